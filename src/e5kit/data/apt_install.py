"""Install the Debian packages a local corpus needs, when its files are missing (root only)."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Sequence

from e5kit.errors import E5kitError

log = logging.getLogger("e5kit")


def apt_install(packages: Sequence[str], *, update: bool = True) -> None:
    """Run `apt-get update && apt-get install -y PACKAGES`; raise with the command to run when that is impossible."""
    cmd = "apt-get update && apt-get install -y " + " ".join(packages)
    if shutil.which("apt-get") is None:
        raise E5kitError(f"apt-get not found; install the files of {', '.join(packages)} another way")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise E5kitError(f"files missing; run as root: {cmd}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log.info("installing %s", " ".join(packages))
    if update:
        subprocess.run(["apt-get", "update", "-q", "-o", "Acquire::Languages=en"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-q", *packages], check=True, env=env)
