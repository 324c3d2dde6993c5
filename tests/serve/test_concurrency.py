"""Many clients at once: shared batches, equal results, 429 when full, cancel on disconnect, graceful stop."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.serve.conftest import start_server
from tests.texts import mixed_texts


class Gate:
    """Wraps the model's batch interface so a test can hold the worker thread and see every batch it ran."""

    def __init__(self, model) -> None:
        self.model, self.open, self.seen = model, threading.Event(), []
        self.entered = threading.Event()
        self.device_type = model.device_type

    def embed_token_ids(self, ids, *, normalize=True):
        self.entered.set()
        self.open.wait(20)
        self.seen.append([list(x) for x in ids])
        return self.model.embed_token_ids(ids, normalize=normalize)


def gated(srv) -> tuple[Gate, object]:
    service = srv.server.config.app.app.state.service  # Guard -> FastAPI -> service
    gate = Gate(service.batcher.model)
    service.batcher.model = gate
    return gate, service


def wait_for(predicate, timeout=10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.01)
    return False


def metric(text: str, name: str) -> float:
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def test_concurrent_clients_get_their_own_exact_results_in_shared_batches(e5_model):
    texts = mixed_texts(96, seed=3)
    groups = [texts[i::24] for i in range(24)]  # 24 clients, 4 texts each, mixed lengths
    with start_server(e5_model, auto_truncate=True) as srv:
        gate, service = gated(srv)
        with httpx.Client(base_url=srv.url, timeout=30) as http:
            with ThreadPoolExecutor(25) as pool:
                warm = pool.submit(http.post, "/embed", json={"inputs": "warm"})
                assert gate.entered.wait(5)  # the worker now waits at the closed gate
                futures = [pool.submit(http.post, "/embed", json={"inputs": g, "prompt_name": "passage"})
                           for g in groups]
                assert wait_for(lambda: service.batcher.queue_inputs == 96)
                gate.open.set()
                results = [f.result() for f in futures]
                assert warm.result().status_code == 200
            text = http.get("/metrics").text
    for g, r in zip(groups, results, strict=True):
        assert r.status_code == 200
        np.testing.assert_allclose(np.array(r.json()), e5_model.encode_passages(g), atol=1e-5)
    batches = metric(text, "e5kit_batch_size_count")
    assert metric(text, "e5kit_batch_size_sum") / batches > 10, "requests were not packed together"
    assert metric(text, "e5kit_queue_depth") == 0


def test_full_queue_answers_429_with_retry_after_and_recovers(e5_model):
    with start_server(e5_model, max_queue_tokens=64, max_request_tokens=64) as srv:
        gate, service = gated(srv)
        with httpx.Client(base_url=srv.url, timeout=30) as http, ThreadPoolExecutor(4) as pool:
            first = pool.submit(http.post, "/v1/embeddings", json={"input": "water"})
            assert gate.entered.wait(5)
            second = pool.submit(http.post, "/v1/embeddings", json={"input": [[10] * 50]})
            assert wait_for(lambda: service.batcher.queue_tokens >= 50)
            shed = http.post("/v1/embeddings", json={"input": [[11] * 30]})
            assert shed.status_code == 429 and int(shed.headers["retry-after"]) >= 1
            assert shed.json()["error"]["type"] == "rate_limit_error"
            assert service.batcher.queue_tokens <= 64
            gate.open.set()
            assert first.result().status_code == 200 and second.result().status_code == 200
            assert http.post("/v1/embeddings", json={"input": [[11] * 30]}).status_code == 200
            assert metric(http.get("/metrics").text, "e5kit_rejected_requests_total") == 1


def test_client_disconnect_cancels_its_queued_inputs(e5_model):
    with start_server(e5_model) as srv:
        gate, service = gated(srv)
        with httpx.Client(base_url=srv.url, timeout=30) as http, ThreadPoolExecutor(2) as pool:
            holder = pool.submit(http.post, "/v1/embeddings", json={"input": "water"})
            assert gate.entered.wait(5)
            with pytest.raises(httpx.TimeoutException):  # the client gives up and closes its connection
                httpx.post(srv.url + "/v1/embeddings", json={"input": [[77] * 9] * 5}, timeout=0.5)
            assert wait_for(lambda: service.batcher.queue_inputs == 0), "the abandoned inputs stayed queued"
            gate.open.set()
            assert holder.result().status_code == 200
            assert metric(http.get("/metrics").text, "e5kit_cancelled_inputs_total") == 5
    assert not any(77 in row for batch in gate.seen for row in batch), "cancelled inputs were run"


def test_graceful_shutdown_finishes_in_flight_requests(e5_model):
    srv = start_server(e5_model).__enter__()
    gate, service = gated(srv)
    http = httpx.Client(base_url=srv.url, timeout=30)
    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(http.post, "/embed", json={"inputs": "hold"})]
        assert gate.entered.wait(5)
        futures += [pool.submit(http.post, "/embed", json={"inputs": [f"text {i}", "water"]}) for i in range(4)]
        assert wait_for(lambda: service.batcher.queue_inputs == 8)
        stopper = threading.Thread(target=srv.stop)
        stopper.start()
        time.sleep(0.3)  # shutdown has begun while every request is still waiting
        gate.open.set()
        stopper.join(30)
        results = [f.result() for f in futures]
    http.close()
    assert [r.status_code for r in results] == [200] * 5
    assert not service.batcher.running and service.batcher.queue_inputs == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(srv.url + "/health", timeout=2)
