"""What a user would pick instead of e5kit: sentence-transformers with its torch, ONNX or OpenVINO backend.

Loading and timing live in `st_worker` (one definition, no e5kit imports). `st_model` runs it in this
process; `RemoteSt` runs it in another Python environment (`make st-env`), because the ONNX and
OpenVINO backends need optimum, which pins a transformers version this environment does not have.
Both calibrate ``openvino-int8`` on e5kit's non-evaluation calibration texts. A backend whose
packages do not load is reported with the reason instead of a row (`StBackendMissing`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from e5kit.bench import st_worker

StBackendMissing = st_worker.BackendMissing
ST_ENV = Path(".venv-st")  # what `make st-env` builds, relative to the project root
ST_PYTHON_VAR = "E5KIT_ST_PYTHON"
HERE = "here"  # --st-python here: every sentence-transformers row in the bench's own process


def _calibration(backend: str) -> tuple[str, ...]:
    if backend != "openvino-int8":
        return ()
    from e5kit.encode.openvino import calibration_texts

    return calibration_texts()


def st_model(path: str | Path, backend: str, device: str, max_len: int, work_dir: Path | None = None) -> Any:
    """A SentenceTransformer on `backend` (one of ST_BACKENDS) in this process; StBackendMissing when it
    cannot load here."""
    return st_worker.load_st(path, backend, device, max_len, work_dir, _calibration(backend))


def resolve_st_python(value: str | Path | None) -> Path | None:
    """The Python that runs sentence-transformers' rows; None: this process.

    `value` None means: $E5KIT_ST_PYTHON, else `.venv-st/bin/python` when it exists, else this
    process. "here" forces this process. A path that is not an executable file is an error.
    """
    if value is None:
        value = os.environ.get(ST_PYTHON_VAR) or None
        if value is None:
            default = ST_ENV / "bin" / "python"
            return default.absolute() if default.is_file() else None
    if str(value) == HERE:
        return None
    path = Path(value).expanduser()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ValueError(f"sentence-transformers Python {str(value)!r} is not an executable file "
                         f"(build one with `make st-env`, or pass 'here' for this process)")
    return path.absolute()


class RemoteSt:
    """A SentenceTransformer in a worker process run by `python`, with SentenceTransformer's `encode`.

    Each instance is one process holding one model, so its peak RSS is that model's alone. After each
    `encode`, `last` holds the worker's own {wall, cpu, peak_rss, start_rss} for that call.
    """

    def __init__(self, python: str | Path, path: str | Path, backend: str, max_len: int, *,
                 threads: int | None = None, work_dir: Path | None = None, device: str = "cpu") -> None:
        st_worker.check_backend(backend)  # before a process starts
        self.python, self.backend = str(python), backend
        self._dir = Path(tempfile.mkdtemp(prefix="e5kit-st-", dir=work_dir))
        self._stderr = open(self._dir / "stderr.log", "w+b")  # noqa: SIM115  (read back on failure)
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # its own packages, not ours
        try:
            self.proc = subprocess.Popen([self.python, st_worker.__file__], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=self._stderr, text=True, env=env)
        except OSError as exc:
            raise StBackendMissing(f"cannot start {self.python}: {exc}") from exc
        self.last: dict[str, float] = {}
        self.calls = 0
        try:
            hello = self._ask({"op": "hello"})
        except RuntimeError as exc:  # not a Python that can run the worker: a skip with the reason
            self.close()
            raise StBackendMissing(str(exc)) from exc
        self.versions: dict[str, str] = hello["versions"]
        answer = self._ask({"op": "load", "path": str(Path(path).absolute()), "backend": backend,
                            "device": device, "max_len": max_len, "threads": threads,
                            "work_dir": str(self._dir), "calibration": list(_calibration(backend))})
        self.dim = int(answer["dim"])

    def _ask(self, request: dict) -> dict:
        if self.proc.poll() is not None:
            raise RuntimeError(self._died())
        try:
            self.proc.stdin.write(json.dumps(request) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        if not line:
            self.proc.wait(timeout=30)
            raise RuntimeError(self._died())
        answer = json.loads(line)
        if "error" in answer:
            if answer.get("missing"):
                self.close()
                raise StBackendMissing(answer["error"])
            raise RuntimeError(f"sentence-transformers worker ({self.python}, {self.backend}): {answer['error']}"
                               + (f"\n{answer['traceback']}" if answer.get("traceback") else ""))
        return answer

    def _died(self) -> str:
        self._stderr.flush()
        self._stderr.seek(0)
        tail = self._stderr.read().decode(errors="replace")[-2000:]
        return (f"sentence-transformers worker ({self.python}, {self.backend}) exited with code "
                f"{self.proc.returncode}; its last output:\n{tail}")

    def encode(self, texts: Sequence[str], batch_size: int = 32, normalize_embeddings: bool = False,
               convert_to_numpy: bool = True, show_progress_bar: bool = False, **_: Any) -> np.ndarray:
        """SentenceTransformer.encode's answer for `texts` (always a float32 array)."""
        del convert_to_numpy, show_progress_bar
        self.calls += 1
        out = self._dir / f"vectors-{self.calls}.npy"
        self.last = self._ask({"op": "encode", "texts": list(texts), "batch_size": batch_size,
                               "normalize": normalize_embeddings, "out": str(out)})
        vectors = np.load(out)
        out.unlink()
        return vectors

    def get_embedding_dimension(self) -> int:
        return self.dim

    def close(self) -> None:
        """Stop the worker (idempotent)."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()

    def __del__(self) -> None:
        if getattr(self, "proc", None) is not None and self.proc.poll() is None:
            self.proc.kill()


class StAsE5:
    """A SentenceTransformer seen through the few E5 methods eval's DenseModel uses (for --quality rows).

    Prefixes come from e5kit's prompt policy for the same checkpoint, so both sides encode the same text.
    """

    def __init__(self, st: Any, policy: Any, name: str) -> None:
        from e5kit.encode.engine import EncodeStats

        self.st, self.policy, self.name = st, policy, name
        self.last_stats = EncodeStats()
        self.fingerprint = name

    def encode(self, texts: Sequence[str], *, prefix: str = "", show_progress: bool | None = None) -> np.ndarray:
        del show_progress
        if not texts:
            return np.zeros((0, st_worker.embedding_dim(self.st)), dtype=np.float32)
        return self.st.encode([self.policy.add(t, prefix) for t in texts], normalize_embeddings=True,
                              convert_to_numpy=True, show_progress_bar=False).astype(np.float32)

    def iter_encode(self, texts: Any, *, prefix: str = "", show_progress: bool | None = None,
                    total: int | None = None, chunk: int = 4096) -> Iterator[np.ndarray]:
        del total
        block: list[str] = []
        for text in texts:
            block.append(text)
            if len(block) == chunk:
                yield self.encode(block, prefix=prefix, show_progress=show_progress)
                block = []
        if block:
            yield self.encode(block, prefix=prefix, show_progress=show_progress)

    def info(self) -> dict[str, Any]:
        return {"model": self.name, "runner": "sentence-transformers"}
