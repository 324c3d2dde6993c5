"""The optional engines: import them with one clear error naming the extra, and connect to a Ray cluster with
one clear error naming the address tried."""

from __future__ import annotations

import os
from typing import Any

from e5kit.errors import E5kitError

EXTRA = "pip install 'e5kit[scale]'"


class EngineError(E5kitError):
    """An engine is not installed, or its cluster cannot be reached."""


def require(module: str, what: str) -> Any:
    """Import `module` (datatrove or ray) or raise EngineError saying which extra installs it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EngineError(f"{what} needs the {module!r} package, which is not installed ({exc}); install the "
                          f"scale extra: {EXTRA}") from None


def check_address(address: str | None) -> None:
    """Refuse, in seconds and before any work, a Ray address where nothing listens (`auto` and `local` are
    Ray's to resolve)."""
    import socket

    if not address or address in ("auto", "local"):
        return
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise EngineError(f"Ray address {address!r} is not HOST:PORT (or ray://HOST:PORT, auto)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        raise EngineError(f"cannot reach a Ray cluster at {address!r} ({exc}); start one (`ray start --head`) and "
                          "pass its address with --address (or RAY_ADDRESS), or leave both out for a local Ray") \
            from None


def connect_ray(address: str | None = None, *, num_cpus: int | None = None) -> Any:
    """`ray` initialised: at `address` (or $RAY_ADDRESS) when given, else a local Ray on this machine
    (`num_cpus` of its cores). A cluster that cannot be reached is one EngineError naming the address."""
    ray = require("ray", "the Ray engine")
    if ray.is_initialized():
        return ray
    address = address or os.environ.get("RAY_ADDRESS") or None
    check_address(address)
    try:
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"at {address!r}" if address else "on this machine"
        raise EngineError(f"cannot reach a Ray cluster {where}: {exc}. Start one (`ray start --head`) and pass "
                          "its address with --address (or RAY_ADDRESS), or leave both out for a local Ray") from None
    return ray
