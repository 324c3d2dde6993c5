"""Running the app under uvicorn: in the foreground (the CLI) or on a background thread (tests, notebooks).

uvicorn handles SIGINT/SIGTERM gracefully: it stops accepting, lets in-flight requests finish
(up to `graceful_timeout_s`), then the app's lifespan drains the batcher's queue.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from e5kit.serve.config import ServeConfig

log = logging.getLogger("e5kit.serve")


def uvicorn_config(app: Any, config: ServeConfig, *, access_log: bool = True, log_level: str = "info") -> Any:
    import uvicorn

    return uvicorn.Config(app, host=config.host, port=config.port, limit_concurrency=config.max_concurrency,
                          timeout_graceful_shutdown=int(config.graceful_timeout_s), access_log=access_log,
                          log_level=log_level, lifespan="on", server_header=False)


def load_and_serve(model_path: str, config: ServeConfig, *, device: str | None = None,
                   precision: str | None = None, max_seq_length: int | None = None,
                   log_level: str = "info") -> None:
    """Load the model, warn if exposed without a key, and serve until interrupted."""
    import uvicorn

    from e5kit import E5
    from e5kit.serve.app import create_app

    if not config.is_loopback and config.api_key is None:
        log.warning("serving on %s without an API key: anyone who can reach this address can use the model",
                    config.host)
    model = E5(model_path, device=device, precision=precision, max_seq_length=max_seq_length,
               max_tokens_per_batch=config.max_batch_tokens)
    log.info("serving %s (dim %d, prompts %s) on http://%s:%d", model.name, model.dim, model.prompts or "none",
             config.host, config.port)
    uvicorn.Server(uvicorn_config(create_app(model, config), config, log_level=log_level)).run()


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
