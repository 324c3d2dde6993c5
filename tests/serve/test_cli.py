"""`e5kit serve`: flags, config errors as one line, and a real process that serves and stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from e5kit.cli import main


def test_help_lists_the_server_flags(capsys):
    with pytest.raises(SystemExit) as info:
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert info.value.code == 0
    for flag in ("--model", "--host", "--port", "--api-key", "--default-input-type", "--auto-truncate",
                 "--max-queue-tokens", "--max-batch-tokens", "--token-ids", "NAME=]PATH"):
        assert flag in out


@pytest.mark.parametrize(("argv", "needle"), [
    (["--max-queue-tokens", "10"], "max_queue_tokens (10) must be >= max_request_tokens"),
    (["--max-batch-tokens", "0"], "max_batch_tokens must be a positive int"),
    (["--port", "70000"], "port must be an int in [0, 65535]"),
    (["--max-queue-seconds", "-1"], "max_queue_seconds must be a positive number"),
    (["--model", "/no/such/model/folder"], "/no/such/model/folder"),
])
def test_bad_settings_fail_in_one_line(capsys, argv, needle):
    assert main(["serve", *argv]) == 1
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["--default-input-type", "document"], ["--token-ids", "gpt2"]])
def test_bad_choice_is_a_usage_error(argv):
    with pytest.raises(SystemExit) as info:
        main(["serve", *argv])
    assert info.value.code == 2


def test_two_models_with_one_name_are_refused_before_loading(capsys, serve_ckpt):
    start = time.monotonic()
    assert main(["serve", "--model", str(serve_ckpt), "--model", f"e5-small-unsupervised={serve_ckpt}"]) == 1
    err = capsys.readouterr().err
    assert "two models would be served as 'e5-small-unsupervised'" in err and "NAME=PATH" in err
    assert time.monotonic() - start < 5, "names must be checked before any model loads"


def test_model_specs(serve_ckpt, tmp_path):
    from e5kit.serve.server import parse_model_specs

    odd = tmp_path / "a=b"  # an existing path with "=" in it is a path, not NAME=PATH
    odd.mkdir()
    assert parse_model_specs([f"e5={serve_ckpt}", str(serve_ckpt), "intfloat/e5-base-unsupervised", str(odd)]) == [
        ("e5", str(serve_ckpt)), ("e5-small-unsupervised", str(serve_ckpt)),
        ("intfloat/e5-base-unsupervised", "intfloat/e5-base-unsupervised"), ("a=b", str(odd))]
    with pytest.raises(ValueError, match="give at least one --model"):
        parse_model_specs([])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_process_serves_with_env_api_key_and_stops_on_sigterm(serve_ckpt):
    port = free_port()
    env = {**os.environ, "E5KIT_API_KEY": "k-123", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "e5kit", "serve", "--model", str(serve_ckpt), "--port", str(port),
                             "--log-level", "info"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()[-2000:]
            time.sleep(0.2)
        assert httpx.post(url + "/v1/embeddings", json={"input": "water"}).status_code == 401
        r = httpx.post(url + "/v1/embeddings", json={"input": "water"}, headers={"Authorization": "Bearer k-123"})
        assert r.status_code == 200 and len(r.json()["data"][0]["embedding"]) == 32
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    log = proc.stderr.read().decode()
    # uvicorn shuts down gracefully, then re-raises the signal it caught, as a server killed by it should
    assert code in (0, -signal.SIGTERM) and "Application shutdown complete" in log, log[-2000:]
    assert "Traceback" not in log
