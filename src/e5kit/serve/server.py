"""Running the app under uvicorn: in the foreground (the CLI) or on a background thread (tests, notebooks).

uvicorn handles SIGINT/SIGTERM gracefully: it stops accepting, lets in-flight requests finish
(up to `graceful_timeout_s`), then the app's lifespan drains the batcher's queue.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from e5kit.serve.config import ServeConfig

log = logging.getLogger("e5kit.serve")


def uvicorn_config(app: Any, config: ServeConfig, *, access_log: bool = True, log_level: str = "info") -> Any:
    import uvicorn

    return uvicorn.Config(app, host=config.host, port=config.port, limit_concurrency=config.max_concurrency,
                          timeout_graceful_shutdown=int(config.graceful_timeout_s), access_log=access_log,
                          log_level=log_level, lifespan="on", server_header=False)


def parse_model_specs(specs: str | Sequence[str]) -> list[tuple[str, str]]:
    """(name, path or hub id) per `--model` value: "NAME=PATH", or a path / hub id named after its folder
    or id. Names must be unique; checked before any model is loaded."""
    from e5kit.serve.service import public_name

    out: list[tuple[str, str]] = []
    for spec in [specs] if isinstance(specs, str) else list(specs):
        name, sep, path = spec.partition("=")
        if not sep or not path or not name or "/" in name or Path(spec).expanduser().exists():
            name, path = public_name(spec), spec
        if name in (n for n, _ in out):
            raise ValueError(f"two models would be served as {name!r}; name them: --model NAME=PATH")
        out.append((name, path))
    if not out:
        raise ValueError("give at least one --model")
    return out


def load_and_serve(models: str | Sequence[str], config: ServeConfig, *, device: str | None = None,
                   precision: str | None = None, max_seq_length: int | None = None,
                   log_level: str = "info") -> None:
    """Load the models ("PATH" or "NAME=PATH" each), warn if exposed without a key, serve until interrupted."""
    import uvicorn

    from e5kit import E5
    from e5kit.serve.app import create_app

    specs = parse_model_specs(models)
    if not config.is_loopback and config.api_key is None:
        log.warning("serving on %s without an API key: anyone who can reach this address can use the model",
                    config.host)
    loaded = []
    for name, path in specs:
        model = E5(path, device=device, precision=precision, max_seq_length=max_seq_length,
                   max_tokens_per_batch=config.max_batch_tokens)
        log.info("serving %s as %r (dim %d, prompts %s)", model.name, name, model.dim, model.prompts or "none")
        loaded.append((name, model))
    log.info("listening on http://%s:%d", config.host, config.port)
    uvicorn.Server(uvicorn_config(create_app(loaded, config), config, log_level=log_level)).run()


class BackgroundServer:
    """Serve an app on a thread at 127.0.0.1 and an ephemeral port; `url` is set once it accepts requests."""

    def __init__(self, app: Any, config: ServeConfig | None = None, *, host: str = "127.0.0.1") -> None:
        import uvicorn

        self.config = config or ServeConfig()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn_config(app, self.config, access_log=False, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Graceful: stop accepting, finish in-flight requests, drain the queue."""
        self.server.should_exit = True
        self.thread.join(timeout)
        self.sock.close()

    def __exit__(self, *exc: object) -> None:
        self.stop()
