"""e5kit's own CPU attention kernels (variable length, packed rows), built at first use, checked, or left off.

Why: on all-MiniLM-L6-v2 (head size 32) torch's CPU flash attention took a third of a bf16 forward for a
tenth of its FLOPs (the online softmax, not the matmuls, bounds it), and the padded path also scatters and
gathers every batch. `kernels/attention.cpp` reads the packed (N, 3H) QKV rows as they are, with no padding:
- bf16: Q K^T and P V on AMX tiles, softmax with AVX-512 (CPUs with amx_bf16, amx_tile, avx512_bf16);
- fp32: FMA throughout, fp32 products and sums and a degree-5 exp, so it stays exact (max |diff| to torch's
  attention ~1e-6): AVX-512 (avx512f, avx512dq; AMX or not), else AVX2 + FMA (avx2, fma).
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
import sys
import tempfile
import threading
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("e5kit")

ENV_SWITCH = "E5KIT_NATIVE_ATTENTION"
PROBE_ENV = "E5KIT_NATIVE_ATTENTION_PROBE"  # set in the child process that first runs a newly built library
CACHE_ENV = "E5KIT_CACHE"
HEAD_DIMS = (32, 64)
# Per dtype, the kernels in order of preference: (instruction set, CPU flags it executes, entry point)
KERNELS = {torch.bfloat16: (("amx", ("amx_bf16", "amx_tile", "avx512_bf16", "avx512bw", "avx512dq", "avx512f"),
                             "e5kit_attention_bf16"),),
           torch.float32: (("avx512", ("avx512f", "avx512dq"), "e5kit_attention_fp32"),
                           ("avx2", ("avx2", "fma"), "e5kit_attention_fp32_avx2"))}
# largest max |diff| to `reference` the self-check accepts: bf16 rounds probabilities and output (~0.02 at the
# check's magnitudes); fp32 differs by summation order only (~1e-6)
CHECK_TOLERANCE = {torch.bfloat16: 0.05, torch.float32: 1e-4}
SOURCE = "attention.cpp"
# -fopenmp at compile time only: the library's GOMP_* calls bind to the OpenMP runtime torch has loaded (same
# soname, global scope), so the kernel's threads are torch's threads and torch.set_num_threads governs them.
# No -m flags and no -march=native: the library is built for baseline x86-64 and each path's functions carry their
# own instruction set (#pragma GCC target in the source), so it loads on any x86-64 CPU, is the same on every
# machine (a cache folder shared across CPUs stays valid), and each path runs only where the CPU reports its flags.
COMPILE_FLAGS = ("-O3", "-std=c++17", "-fPIC", "-fopenmp")

_lock = threading.Lock()
_state: dict[str, Any] = {}  # what _load found: kernels, isas, reasons (per dtype) and the library's path


def cache_dir() -> Path:
    """Where built kernels live: $E5KIT_CACHE/kernels, else $XDG_CACHE_HOME/e5kit/kernels, else ~/.cache/..."""
    root = os.environ.get(CACHE_ENV)
    if root:
        return Path(root).expanduser() / "kernels"
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "e5kit" / "kernels"


def pick_kernel(dtype: torch.dtype, flags: frozenset[str] | None = None) -> tuple[str, str] | None:
    """(instruction set, entry point) of the best `dtype` kernel this CPU's flags allow, or None."""
    from e5kit.hardware import cpu_flags

    flags = cpu_flags() if flags is None else flags
    for isa, needed, entry in KERNELS.get(dtype, ()):
        if all(f in flags for f in needed):
            return isa, entry
    return None


def unsupported_reason(dtype: torch.dtype = torch.bfloat16, flags: frozenset[str] | None = None,
                       machine: str | None = None) -> str | None:
    """Why no `dtype` kernel can run on this machine (switch, OS, CPU flags), or None when one may."""
    from e5kit.hardware import cpu_flags

    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "off", "false", "no"):
        return f"turned off by {ENV_SWITCH}={os.environ[ENV_SWITCH]}"
    if dtype not in KERNELS:
        return f"no kernel for {dtype}"
    machine = machine if machine is not None else platform.machine()
    if platform.system() != "Linux" or machine not in ("x86_64", "AMD64"):
        return f"needs Linux on x86-64 (this is {platform.system()} on {machine})"
    flags = cpu_flags() if flags is None else flags
    if pick_kernel(dtype, flags) is None:
        options = [", ".join(f for f in needed if f not in flags) for _, needed, _ in KERNELS[dtype]]
        return "this CPU lacks " + " (or " .join(options) + ")" * (len(options) - 1)
    return None


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
    from e5kit.io.atomic import atomic_path

    folder.mkdir(parents=True, exist_ok=True)
    # whole or not at all: another process may be loading the library while this one builds it
    with tempfile.TemporaryDirectory(prefix="e5kit-kernel-") as work, atomic_path(lib) as tmp:
        src, obj = Path(work) / SOURCE, Path(work) / "attention.o"
        src.write_bytes(source)
        for cmd in ([compiler, *COMPILE_FLAGS, "-c", str(src), "-o", str(obj)],
                    [compiler, "-shared", str(obj), "-o", str(tmp)]):
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"{' '.join(cmd[:2])} ... failed: {(done.stderr or done.stdout).strip()[-600:]}")
    return lib


def _probe_marker(lib: Path) -> Path:
    """The file that says `lib` ran its checks to the end in a child process on this kind of CPU."""
    from e5kit.hardware import cpu

    model, flags = cpu()
    tag = hashlib.sha256(f"{model}|{' '.join(sorted(flags))}".encode()).hexdigest()[:12]
    return lib.with_name(f"{lib.stem}.{tag}.ok")


def _probe_command() -> list[str]:
    return [sys.executable, "-c", "import sys; from e5kit.model import native_attention as na; sys.exit(na._probe())"]


def _probe_in_child(lib: Path) -> str | None:
    """Run a newly built library's checks in a child process first, once per library and kind of CPU: a kernel
    that crashes takes down the child, never the caller. None when the child got through, else why not."""
    from e5kit.io.atomic import atomic_write_text

    marker = _probe_marker(lib)
    if marker.exists():
        return None
    if not sys.executable:  # an embedded interpreter: no Python to run the child with, so no guarded first run
        return "no Python executable (sys.executable) to run its first check in a child process"
    import e5kit

    env = {**os.environ, PROBE_ENV: "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(e5kit.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH")]))}
    try:
        done = subprocess.run(_probe_command(), env=env, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"its first run in a child process failed: {exc}"
    if done.returncode != 0:
        how = f"signal {-done.returncode}" if done.returncode < 0 else f"exit {done.returncode}"
        return f"its first run crashed a child process ({how}): {(done.stderr or '').strip()[-300:]}"
    atomic_write_text(marker, done.stdout)
    return None


def _probe() -> int:
    """In the child process: build, load and check every kernel; print what was found. Exit 0 if it got through."""
    for dtype in KERNELS:
        print(f"{dtype}: {status(dtype) or 'on, ' + str(kernel_isa(dtype))}")
    return 0


def _entry(lib: ctypes.CDLL, name: str) -> Callable[..., int]:
    fn = getattr(lib, name)
    fn.restype = ctypes.c_int
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p,
                   ctypes.c_float, ctypes.c_int]
    return fn


def _load() -> dict[str, Any]:
    """Build and load the library; per dtype the checked kernel, its instruction set, or why it is off."""
    reasons: dict[torch.dtype, str | None] = {dtype: unsupported_reason(dtype) for dtype in KERNELS}
    state: dict[str, Any] = {"kernels": {}, "isas": {}, "reasons": reasons, "path": None}
    if all(reasons.values()):
        return state
    compiler = _compiler()
    if compiler is None:
        state["reasons"] = dict.fromkeys(reasons, "no C++ compiler found ($CXX, c++ or g++) to build it")
        return state
    try:
        path = _build(compiler)
        crash = None if os.environ.get(PROBE_ENV) else _probe_in_child(path)
        lib = None if crash else ctypes.CDLL(str(path))
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        state["reasons"] = dict.fromkeys(reasons, f"building or loading it failed: {exc}")
        return state
    if crash:
        state["reasons"] = {d: r or crash for d, r in reasons.items()}
        return state
    state["path"] = path
    for dtype in KERNELS:
        if reasons[dtype] is not None:
            continue
        isa, entry = pick_kernel(dtype)  # type: ignore[misc]
        if isa == "amx" and lib.e5kit_amx_request() != 0:
            reasons[dtype] = "Linux refused the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM)"
            continue
        fn = _entry(lib, entry)
        reasons[dtype] = _self_check(fn, dtype)
        if reasons[dtype] is None:
            state["kernels"][dtype], state["isas"][dtype] = fn, isa
    if state["kernels"]:
        log.info("native attention on: %s (%s)", ", ".join(
            f"{str(d).removeprefix('torch.')} on {isa}" for d, isa in state["isas"].items()), path)
    return state


def _kernel(dtype: torch.dtype) -> Callable[..., int] | None:
    """The checked `dtype` kernel (building the library at the first ask), or None where it is off."""
    with _lock:
        if "reasons" not in _state:
            _state.update(_load())
            for d, reason in _state["reasons"].items():
                if reason:
                    # a CPU without the flags is expected (info); a qualifying machine that could not build or
                    # check the kernel is losing speed it could have (warning, once per process)
                    level = logging.INFO if reason == unsupported_reason(d) else logging.WARNING
                    log.log(level, "native %s attention off: %s; torch's SDPA serves", str(d).removeprefix("torch."),
                            reason)
        return _state["kernels"].get(dtype)


def status(dtype: torch.dtype = torch.bfloat16) -> str | None:
    """None when the `dtype` kernel is built, checked and in use here, else why not (builds it if needed)."""
    _kernel(dtype)
    return _state["reasons"].get(dtype, f"no kernel for {dtype}")


def kernel_isa(dtype: torch.dtype) -> str | None:
    """The instruction set the `dtype` kernel in use runs ('amx', 'avx512', 'avx2'), or None when it is off."""
    _kernel(dtype)
    return _state["isas"].get(dtype)


def library_path() -> Path | None:
    """Where the loaded library lives (None when none was built or loaded)."""
    _kernel(torch.float32)
    return _state["path"]


def usable(head_dim: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether attention with these heads, dtype and device runs on a kernel here (building it at first ask)."""
    return device.type == "cpu" and head_dim in HEAD_DIMS and _kernel(dtype) is not None


def _call(fn: Callable[..., int], qkv: torch.Tensor, offsets: torch.Tensor, heads: int) -> torch.Tensor:
    n, width = qkv.shape
    head_dim = width // (3 * heads)
    out = torch.empty(n, heads * head_dim, dtype=qkv.dtype)
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
    if not isinstance(qkv, torch.Tensor) or qkv.dtype not in KERNELS or qkv.device.type != "cpu" \
            or qkv.dim() != 2:
        raise ValueError("qkv must be a 2-D bf16 or fp32 CPU tensor, got "
                         + (f"{qkv.dtype} {tuple(qkv.shape)} on {qkv.device}" if isinstance(qkv, torch.Tensor)
                            else type(qkv).__name__))
    fn = _kernel(qkv.dtype)
    if fn is None:
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
    return _call(fn, qkv.contiguous(), offsets.contiguous(), heads)


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


def _self_check(fn: Callable[..., int], dtype: torch.dtype) -> str | None:
    """Run the `dtype` kernel on random texts of awkward lengths against `reference`; why not, if it disagrees."""
    gen = torch.Generator().manual_seed(0)
    lengths = torch.tensor([1, 15, 16, 17, 33, 64, 130])
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(lengths, 0)
    for d in HEAD_DIMS:
        heads = 3
        qkv = (torch.randn(int(offsets[-1]), 3 * heads * d, generator=gen) * 2).to(dtype)
        try:
            got = _call(fn, qkv, offsets, heads).float()
        except ValueError as exc:
            return f"self-check failed: {exc}"
        err = (got - reference(qkv, offsets, heads)).abs().max().item()
        if not err <= CHECK_TOLERANCE[dtype]:  # NaN fails too
            return f"self-check failed: head size {d}, max |diff| {err:.3g} to torch's attention"
    return None
