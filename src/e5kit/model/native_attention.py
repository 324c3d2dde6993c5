"""e5kit's own CPU attention kernels (variable length, packed rows), built at first use, checked, or left off.

Why: on all-MiniLM-L6-v2 (head size 32) torch's CPU flash attention took a third of a bf16 forward for a
tenth of its FLOPs (the online softmax, not the matmuls, bounds it), and the padded path also scatters and
gathers every batch. `kernels/attention.cpp` reads the packed (N, 3H) QKV rows as they are, with no padding:
- bf16: Q K^T and P V on AMX tiles, softmax with AVX-512 (CPUs with amx_bf16, amx_tile, avx512_bf16);
- fp32: AVX-512 FMA throughout, fp32 products and sums and a degree-5 exp, so it stays exact (max |diff| to
  torch's attention ~1e-6; CPUs with avx512f and avx512dq, AMX or not).
docs/bench-encode.md (session 25) has the numbers.

It runs only where it can be right: Linux on x86-64 with those flags; CPU tensors without autograd; head size
32 or 64; a C++ compiler ($CXX, else c++ or g++) to build it once into e5kit's cache folder. Before first use
each path is checked against torch's attention on random inputs; any failure leaves that path off, with the
reason in `status()` and the log, and the encoder keeps torch's SDPA. E5KIT_NATIVE_ATTENTION=0 turns both off.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import threading
from importlib import resources
from pathlib import Path

import torch

log = logging.getLogger("e5kit")

ENV_SWITCH = "E5KIT_NATIVE_ATTENTION"
CACHE_ENV = "E5KIT_CACHE"
HEAD_DIMS = (32, 64)
# CPU flags each path executes (the library is compiled for all of them; a path runs only where its flags are)
REQUIRED_FLAGS = {torch.bfloat16: ("amx_bf16", "amx_tile", "avx512_bf16", "avx512bw", "avx512dq", "avx512f"),
                  torch.float32: ("avx512f", "avx512dq")}
# largest max |diff| to `reference` the self-check accepts: bf16 rounds probabilities and output (~0.02 at the
# check's magnitudes); fp32 differs by summation order only (~1e-6)
CHECK_TOLERANCE = {torch.bfloat16: 0.05, torch.float32: 1e-4}
SOURCE = "attention.cpp"
# -fopenmp at compile time only: the library's GOMP_* calls bind to the OpenMP runtime torch has loaded (same
# soname, global scope), so the kernel's threads are torch's threads and torch.set_num_threads governs them.
# Explicit -m flags, not -march=native: the library is the same on every machine (a cache folder shared across
# CPUs stays valid), and each path runs only where the CPU reports its flags.
COMPILE_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-fopenmp", "-mavx512f", "-mavx512bw", "-mavx512vl",
                 "-mavx512bf16", "-mavx512dq", "-mamx-tile", "-mamx-bf16", "-mfma")

_lock = threading.Lock()
_state: dict[str, object] = {}  # "lib": the loaded library or None; "reasons": {dtype: why that path is off}


def cache_dir() -> Path:
    """Where built kernels live: $E5KIT_CACHE/kernels, else $XDG_CACHE_HOME/e5kit/kernels, else ~/.cache/..."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "kernels"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "e5kit" / "kernels"


def unsupported_reason(dtype: torch.dtype = torch.bfloat16, flags: frozenset[str] | None = None,
                       machine: str | None = None) -> str | None:
    """Why the `dtype` path cannot run on this machine (switch, OS, CPU flags), or None when it may."""
    from e5kit.hardware import cpu_flags

    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "off", "false", "no"):
        return f"turned off by {ENV_SWITCH}={os.environ[ENV_SWITCH]}"
    if dtype not in REQUIRED_FLAGS:
        return f"no kernel for {dtype}"
    machine = machine if machine is not None else platform.machine()
    if platform.system() != "Linux" or machine not in ("x86_64", "AMD64"):
        return f"needs Linux on x86-64 (this is {platform.system()} on {machine})"
    flags = cpu_flags() if flags is None else flags
    missing = [f for f in REQUIRED_FLAGS[dtype] if f not in flags]
    return f"this CPU lacks {', '.join(missing)}" if missing else None


def _compiler() -> str | None:
    for name in (os.environ.get("CXX"), "c++", "g++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def _build(compiler: str) -> Path:
    """Compile the kernel into the cache (once per source, flags and compiler) and return the library's path."""
    source = resources.files("e5kit.model.kernels").joinpath(SOURCE).read_bytes()
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=60).stdout
    key = hashlib.sha256(source + " ".join(COMPILE_FLAGS).encode() + version.encode()).hexdigest()[:16]
    folder = cache_dir()
    lib = folder / f"attention-{key}.so"
    if lib.exists():
        return lib
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{lib.stem}.{os.getpid()}.{threading.get_ident()}"
    src, obj = tmp.with_suffix(".cpp"), tmp.with_suffix(".o")
    try:
        src.write_bytes(source)
        for cmd in ([compiler, *COMPILE_FLAGS, "-c", str(src), "-o", str(obj)],
                    [compiler, "-shared", str(obj), "-o", str(tmp.with_suffix(".so"))]):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd[:2])} ... failed: {(done.stderr or done.stdout).strip()[-600:]}")
        os.replace(tmp.with_suffix(".so"), lib)  # whole or not at all: another process may be loading it
    finally:
        for p in (src, obj, tmp.with_suffix(".so")):
            p.unlink(missing_ok=True)
    return lib


def _load() -> tuple[ctypes.CDLL | None, dict[torch.dtype, str | None]]:
    """The library (or None) and, per dtype, None where that path is on or the reason it is off."""
    reasons = {dtype: unsupported_reason(dtype) for dtype in REQUIRED_FLAGS}
    if all(reasons.values()):
        return None, reasons
    compiler = _compiler()
    if compiler is None:
        return None, dict.fromkeys(reasons, "no C++ compiler found ($CXX, c++ or g++) to build it")
    try:
        path = _build(compiler)
        lib = ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        return None, dict.fromkeys(reasons, f"building or loading it failed: {exc}")
    for fn in (lib.e5kit_attention_bf16, lib.e5kit_attention_fp32):
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                       ctypes.c_void_p, ctypes.c_float, ctypes.c_int]
    if reasons[torch.bfloat16] is None and lib.e5kit_amx_request() != 0:
        reasons[torch.bfloat16] = "Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)"
    for dtype, reason in reasons.items():
        if reason is None:
            reasons[dtype] = _self_check(lib, dtype)
    on = [str(d).removeprefix("torch.") for d, r in reasons.items() if r is None]
    if not on:
        return None, reasons
    log.info("native attention on for %s (%s)", ", ".join(on), path)
    return lib, reasons


def _library(dtype: torch.dtype) -> ctypes.CDLL | None:
    """The loaded library if the `dtype` path is on (building and checking it at the first ask), else None."""
    with _lock:
        if "lib" not in _state:
            lib, reasons = _load()
            _state.update(lib=lib, reasons=reasons)
            for d, reason in reasons.items():
                if reason:
                    # a CPU without the flags is expected (info); a qualifying machine that could not build or
                    # check the kernel is losing speed it could have (warning, once per process)
                    level = logging.INFO if reason == unsupported_reason(d) else logging.WARNING
                    log.log(level, "native %s attention off: %s; torch's SDPA serves", str(d).removeprefix("torch."),
                            reason)
        reasons = _state["reasons"]
        return _state["lib"] if reasons.get(dtype, f"no kernel for {dtype}") is None else None  # type: ignore


def status(dtype: torch.dtype = torch.bfloat16) -> str | None:
    """None when the `dtype` kernel is built, checked and in use here, else why not (builds it if needed)."""
    _library(dtype)
    return _state["reasons"].get(dtype, f"no kernel for {dtype}")  # type: ignore[union-attr]


def usable(head_dim: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether attention with these heads, dtype and device runs on a kernel here (building it at first ask)."""
    return device.type == "cpu" and head_dim in HEAD_DIMS and _library(dtype) is not None


def _call(lib: ctypes.CDLL, qkv: torch.Tensor, offsets: torch.Tensor, heads: int) -> torch.Tensor:
    n, width = qkv.shape
    head_dim = width // (3 * heads)
    out = torch.empty(n, heads * head_dim, dtype=qkv.dtype)
    fn = lib.e5kit_attention_bf16 if qkv.dtype == torch.bfloat16 else lib.e5kit_attention_fp32
    rc = fn(qkv.data_ptr(), offsets.data_ptr(), offsets.numel() - 1, heads, head_dim, out.data_ptr(),
            head_dim ** -0.5, torch.get_num_threads())
    if rc != 0:
        raise ValueError({1: f"head size {head_dim} is not one of {HEAD_DIMS}",
                          2: "offsets must increase: every text needs at least one token"}.get(rc, f"error {rc}"))
    return out


def attention(qkv: torch.Tensor, offsets: torch.Tensor, heads: int) -> torch.Tensor:
    """Self-attention of packed (N, 3 * heads * d) bf16 or fp32 Q|K|V rows -> (N, heads * d), same dtype.

    `offsets` (B + 1, int64) marks where each text's rows start and end, as PackedBatch.offsets does. Raises
    RuntimeError when the kernel for that dtype is not available here (see `status()`), ValueError for
    malformed input.
    """
    if not isinstance(qkv, torch.Tensor) or qkv.dtype not in REQUIRED_FLAGS or qkv.device.type != "cpu" \
            or qkv.dim() != 2:
        raise ValueError("qkv must be a 2-D bf16 or fp32 CPU tensor, got "
                         + (f"{qkv.dtype} {tuple(qkv.shape)} on {qkv.device}" if isinstance(qkv, torch.Tensor)
                            else type(qkv).__name__))
    lib = _library(qkv.dtype)
    if lib is None:
        raise RuntimeError(f"native {str(qkv.dtype).removeprefix('torch.')} attention is not available: "
                           f"{status(qkv.dtype)}")
    if isinstance(heads, bool) or not isinstance(heads, int) or heads < 1 or qkv.shape[1] % (3 * heads):
        raise ValueError(f"qkv width {qkv.shape[1]} is not 3 x heads ({heads!r}) x head size")
    if not isinstance(offsets, torch.Tensor) or offsets.dtype != torch.int64 or offsets.device.type != "cpu" \
            or offsets.dim() != 1 or offsets.numel() < 2:
        raise ValueError("offsets must be a 1-D int64 CPU tensor with at least two entries")
    if int(offsets[0]) != 0 or int(offsets[-1]) != qkv.shape[0]:
        raise ValueError(f"offsets must run from 0 to the number of rows ({qkv.shape[0]}), "
                         f"got {int(offsets[0])} .. {int(offsets[-1])}")
    return _call(lib, qkv.contiguous(), offsets.contiguous(), heads)


def reference(qkv: torch.Tensor, offsets: torch.Tensor, heads: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The same attention by torch's SDPA text by text: the kernels' check. In `dtype`, by default fp32 (float64
    for float64 input); bf16 shows what torch's own bf16 attention gives."""
    n, width = qkv.shape
    d = width // (3 * heads)
    dtype = dtype or torch.promote_types(qkv.dtype, torch.float32)
    out = torch.empty(n, heads * d, dtype=dtype)
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        q, k, v = qkv[start:end].to(dtype).view(end - start, 3, heads, d).permute(1, 2, 0, 3).unbind(0)
        out[start:end] = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(0, 1).reshape(
            end - start, heads * d)
    return out


def _self_check(lib: ctypes.CDLL, dtype: torch.dtype) -> str | None:
    """Run the `dtype` kernel on random texts of awkward lengths against `reference`; why not, if it disagrees."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([1, 15, 16, 17, 33, 64, 130])
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, 0)
    for d in HEAD_DIMS:
        heads = 3
        qkv = (torch.randn(int(offsets[-1]), 3 * heads * d, generator=gen) * 2).to(dtype)
        try:
            got = _call(lib, qkv, offsets, heads).float()
        except ValueError as exc:
            return f"self-check failed: {exc}"
        err = (got - reference(qkv, offsets, heads)).abs().max().item()
        if not err <= CHECK_TOLERANCE[dtype]:  # NaN fails too
            return f"self-check failed: head size {d}, max |diff| {err:.3g} to torch's attention"
    return None
