"""e5kit's own attention kernels: right where they run, refused clearly where they cannot, never half-built."""

from __future__ import annotations

import pytest
import torch

from e5kit.model import native_attention as na
from tests.conftest import make_tiny_bert

DTYPES = (torch.bfloat16, torch.float32)
REASONS = {dtype: na.status(dtype) for dtype in DTYPES}  # None, or why that kernel is off here (builds it once)
# the bar for each kernel, relative to how far torch's own SDPA in that dtype lands from float64 attention
SLACK = {torch.bfloat16: (1.5, 1e-2), torch.float32: (2.0, 2e-6)}


def needs(dtype: torch.dtype):
    return pytest.mark.skipif(REASONS[dtype] is not None, reason=f"native {dtype} attention off here: {REASONS[dtype]}")


def each_dtype(test):
    return pytest.mark.parametrize("dtype", [pytest.param(d, marks=needs(d), id=str(d)[6:]) for d in DTYPES])(test)


def _qkv(lengths: list[int], heads: int, d: int, dtype: torch.dtype = torch.bfloat16, seed: int = 0,
         scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(torch.tensor(lengths), 0)
    qkv = (torch.randn(int(offsets[-1]), 3 * heads * d, generator=gen) * scale).to(dtype)
    return qkv, offsets


def _errors(qkv: torch.Tensor, offsets: torch.Tensor, heads: int, got: torch.Tensor) -> tuple[float, float]:
    """Max |diff| to float64 attention of the same inputs: of `got`, and of torch's own SDPA in qkv's dtype."""
    want = na.reference(qkv.double(), offsets, heads)
    torch_err = (na.reference(qkv, offsets, heads, qkv.dtype).double() - want).abs().max().item()
    return (got.double() - want).abs().max().item(), torch_err


@each_dtype
@pytest.mark.parametrize("d", na.HEAD_DIMS)
@pytest.mark.parametrize("lengths", [[1], [16], [31, 32, 33], [256] * 3 + [250, 200, 17, 2], [512, 77]])
def test_matches_torch_attention_as_closely_as_torch_does(dtype, d, lengths):
    heads = 12 if d == 32 else 6
    qkv, offsets = _qkv(lengths, heads, d, dtype, seed=len(lengths) + d)
    want = na.reference(qkv, offsets, heads)
    got = na.attention(qkv, offsets, heads)
    assert got.dtype == dtype and got.shape == want.shape and torch.isfinite(got).all()
    err, torch_err = _errors(qkv, offsets, heads, got)
    factor, floor = SLACK[dtype]
    assert err <= max(factor * torch_err, floor), (err, torch_err)
    if dtype == torch.float32:  # the fp32 mode's contract, on inputs of unit scale: max |diff| <= 1e-5
        unit, _ = _qkv(lengths, heads, d, dtype, seed=len(lengths) + d, scale=1.0)
        assert _errors(unit, offsets, heads, na.attention(unit, offsets, heads))[0] <= 1e-5
    cos = torch.nn.functional.cosine_similarity(got.float(), want, dim=1)
    assert cos.min().item() > 0.9999


@each_dtype
def test_extreme_scores_stay_finite_and_pick_the_right_key(dtype):
    # Scores thousands apart: exp underflows to 0 for all but the best key, never to NaN or garbage
    heads, d = 2, 32
    qkv, offsets = _qkv([40], heads, d, dtype, scale=30.0)
    got = na.attention(qkv, offsets, heads).float()
    want = na.reference(qkv, offsets, heads)
    assert torch.isfinite(got).all()
    assert torch.nn.functional.cosine_similarity(got, want, dim=1).min().item() > 0.999


@each_dtype
def test_long_text_and_many_texts(dtype):
    heads, d = 4, 64
    qkv, offsets = _qkv([2048, 1, 3, 700], heads, d, dtype)
    got = na.attention(qkv, offsets, heads).float()
    want = na.reference(qkv, offsets, heads)
    assert torch.nn.functional.cosine_similarity(got, want, dim=1).min().item() > 0.9999


@each_dtype
def test_same_answer_at_any_thread_count(dtype):
    qkv, offsets = _qkv([100, 64, 3], 12, 32, dtype)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = na.attention(qkv, offsets, 12)
        torch.set_num_threads(max(2, before))
        many = na.attention(qkv, offsets, 12)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, many)  # each (text, head) is computed by one thread, the same way


@needs(torch.bfloat16)
@pytest.mark.parametrize("bad, message", [
    (lambda q, o: (q.half(), o, 12), "bf16 or fp32 CPU"),
    (lambda q, o: ("not a tensor", o, 12), "got str"),
    (lambda q, o: (q[:, :-1], o, 12), "not 3 x heads"),
    (lambda q, o: (q, o, 0), "not 3 x heads"),
    (lambda q, o: (q, o, 12.0), "not 3 x heads"),
    (lambda q, o: (q, o.int(), 12), "int64"),
    (lambda q, o: (q, o.tolist(), 12), "int64"),
    (lambda q, o: (q, o[:1], 12), "at least two"),
    (lambda q, o: (q, o + 1, 12), "from 0"),
    (lambda q, o: (q, torch.tensor([0, 5, 5, q.shape[0]]), 12), "at least one token"),
    (lambda q, o: (q, torch.tensor([0, 9, 5, q.shape[0]]), 12), "at least one token"),
    (lambda q, o: (q.view(2, -1, q.shape[1]), o, 12), "2-D"),
])
def test_malformed_input_is_refused(bad, message):
    qkv, offsets = _qkv([5, 7], 12, 32)
    with pytest.raises(ValueError, match=message):
        na.attention(*bad(qkv, offsets))


@each_dtype
def test_unsupported_head_size_is_refused_not_guessed(dtype):
    qkv, offsets = _qkv([5], 2, 48, dtype)
    assert not na.usable(48, dtype, torch.device("cpu"))
    with pytest.raises(ValueError, match="head size 48"):
        na.attention(qkv, offsets, 2)


@each_dtype
def test_packed_bert_uses_it_and_agrees_with_sdpa(dtype, tmp_path, monkeypatch):
    from transformers import BertModel

    from e5kit.model.packed import PackedBatch, PackedBert

    path = make_tiny_bert(tmp_path, hidden=128, layers=2, max_positions=128)  # 4 heads of 32
    model = BertModel.from_pretrained(path).to(dtype).eval()
    runner = PackedBert(model)
    ids = [list(range(5, 5 + n)) for n in (60, 33, 7, 1)]
    calls = []
    real = na.attention
    monkeypatch.setattr(na, "attention", lambda *a: calls.append(1) or real(*a))
    with torch.inference_mode():
        native = runner(PackedBatch(ids, torch.device("cpu"))).float()
        assert len(calls) == 2  # one per layer
        monkeypatch.setattr(na, "usable", lambda *a: False)
        sdpa = runner(PackedBatch(ids, torch.device("cpu"))).float()
    assert len(calls) == 2
    if dtype == torch.float32:
        assert (native - sdpa).abs().max().item() <= 1e-5
    assert torch.nn.functional.cosine_similarity(native, sdpa, dim=1).min().item() > 0.999


def test_reasons_name_what_is_missing(monkeypatch):
    monkeypatch.delenv(na.ENV_SWITCH, raising=False)
    some = frozenset({"avx512f", "avx512bw", "avx512_bf16", "avx512dq"})
    assert "lacks amx_bf16, amx_tile" in na.unsupported_reason(torch.bfloat16, some, "x86_64")
    assert na.unsupported_reason(torch.float32, some, "x86_64") is None  # fp32 needs no AMX
    assert na.unsupported_reason(torch.float32, frozenset({"avx2", "fma"}), "x86_64") is None  # nor AVX-512
    assert na.unsupported_reason(torch.float32, frozenset({"sse2", "avx2"}), "x86_64") == \
        "this CPU lacks avx512f, avx512dq (or fma)"
    assert "x86-64" in na.unsupported_reason(torch.float32, some, "aarch64")
    assert "no kernel" in na.unsupported_reason(torch.float16, some, "x86_64")
    monkeypatch.setenv(na.ENV_SWITCH, "0")
    assert "turned off" in na.unsupported_reason(torch.float32, some, "x86_64")


def test_the_best_kernel_the_flags_allow():
    amx = frozenset({"amx_bf16", "amx_tile", "avx512_bf16", "avx512bw", "avx512dq", "avx512f", "avx2", "fma"})
    assert na.pick_kernel(torch.bfloat16, amx) == ("amx", "e5kit_attention_bf16")
    assert na.pick_kernel(torch.float32, amx) == ("avx512", "e5kit_attention_fp32")
    assert na.pick_kernel(torch.float32, frozenset({"avx2", "fma"})) == ("avx2", "e5kit_attention_fp32_avx2")
    assert na.pick_kernel(torch.bfloat16, frozenset({"avx2", "fma", "avx512f"})) is None
    assert na.pick_kernel(torch.float16, amx) is None


needs_avx2 = pytest.mark.skipif(
    not {"avx2", "fma"} <= __import__("e5kit.hardware", fromlist=["cpu_flags"]).cpu_flags()
    or na.library_path() is None, reason=f"AVX2 kernel cannot run here: {REASONS[torch.float32]}")


@needs_avx2
@pytest.mark.parametrize("d", na.HEAD_DIMS)
@pytest.mark.parametrize("lengths", [[1], [7, 8, 9], [15, 16, 17], [256] * 3 + [250, 33, 2], [512, 77]])
def test_the_avx2_kernel_is_exact_too(d, lengths):
    # CPUs without AVX-512 run this one; this machine runs it when asked directly
    import ctypes

    fn = na._entry(ctypes.CDLL(str(na.library_path())), "e5kit_attention_fp32_avx2")
    heads = 4
    unit, offsets = _qkv(lengths, heads, d, torch.float32, seed=d + len(lengths), scale=1.0)
    err, torch_err = _errors(unit, offsets, heads, na._call(fn, unit, offsets, heads))
    assert err <= 1e-5 and err <= max(2 * torch_err, 2e-6), (err, torch_err)
    harsh, _ = _qkv(lengths, heads, d, torch.float32, seed=d, scale=30.0)
    got = na._call(fn, harsh, offsets, heads)
    assert torch.isfinite(got).all()
    assert torch.nn.functional.cosine_similarity(got, na.reference(harsh, offsets, heads), dim=1).min() > 0.999


@pytest.mark.skipif(na.library_path() is None, reason="the kernel library is not built here")
def test_each_instruction_set_stays_in_its_own_functions():
    # The library must load and run its AVX2 path on CPUs without AVX-512: only AVX-512 functions may touch zmm,
    # mask or tile registers, and only AVX functions ymm; the driver, buffers and entry points are plain x86-64.
    import re
    import shutil
    import subprocess

    if shutil.which("objdump") is None:
        pytest.skip("objdump (binutils) is not installed")
    text = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", str(na.library_path())],
                          capture_output=True, text=True, check=True).stdout
    amx = r"\b(ldtilecfg|sttilecfg|tilerelease|tilezero|tileloadd|tilestored|tdpbf16ps)\b"
    wide = re.compile(r"%zmm|%tmm|%k[0-7]\b|" + amx)
    avx = re.compile(r"%ymm")
    seen = set()
    for block in re.split(r"\n(?=[0-9a-f]+ <)", text):
        name = block.split(">:", 1)[0]
        if "one_head_fp32_avx2" in name:
            assert not wide.search(block), f"AVX-512 instruction in the AVX2 path: {name}"
            seen.add("avx2")
        elif re.search(r"one_head|configure_tiles|release_tiles", name):
            seen.add("avx512")
        else:
            assert not wide.search(block) and not avx.search(block), f"vector ISA outside its region: {name}"
    assert seen == {"avx2", "avx512"}


def test_switched_off_means_torch_serves(monkeypatch):
    monkeypatch.setenv(na.ENV_SWITCH, "off")
    monkeypatch.setattr(na, "_state", {})
    for dtype in DTYPES:
        assert "turned off" in na.status(dtype)
        assert not na.usable(32, dtype, torch.device("cpu"))
    qkv, offsets = _qkv([3], 12, 32)
    with pytest.raises(RuntimeError, match="not available: turned off"):
        na.attention(qkv, offsets, 12)


def test_never_on_other_dtypes_or_devices():
    assert not na.usable(32, torch.float16, torch.device("cpu"))
    assert not na.usable(32, torch.bfloat16, torch.device("meta"))
    assert "no kernel" in na.status(torch.float16)


def test_a_failed_build_leaves_it_off_and_nothing_half_written(monkeypatch, tmp_path):
    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setattr(na, "unsupported_reason", lambda dtype: None)
    monkeypatch.setenv(na.CACHE_ENV, str(tmp_path))
    fake = tmp_path / "fake-cxx"
    fake.write_text("#!/bin/sh\necho 'fake compiler 1.0'\n[ \"$1\" = --version ] && exit 0\necho broken >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(na, "_compiler", lambda: str(fake))
    for dtype in DTYPES:
        reason = na.status(dtype)
        assert reason.startswith("building or loading it failed") and "broken" in reason
    assert list((tmp_path / "kernels").iterdir()) == []  # no temporary file, no partial library left behind


def test_an_unwritable_cache_is_a_reason_not_a_crash(monkeypatch, tmp_path):
    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setattr(na, "unsupported_reason", lambda dtype: None)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(na.CACHE_ENV, str(blocker))
    assert na.status(torch.float32).startswith("building or loading it failed")


def test_no_compiler_is_a_reason(monkeypatch):
    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setattr(na, "unsupported_reason", lambda dtype: None)
    monkeypatch.setattr(na, "_compiler", lambda: None)
    assert "no C++ compiler" in na.status(torch.float32)


@each_dtype
def test_a_kernel_that_disagrees_is_not_used(dtype, monkeypatch):
    monkeypatch.setattr(na, "_state", {})
    real = na._call
    monkeypatch.setattr(na, "_call", lambda fn, qkv, off, heads: real(fn, qkv, off, heads) * (
        1.1 if qkv.dtype == dtype else 1.0))
    assert "self-check failed" in na.status(dtype)
    assert not na.usable(32, dtype, torch.device("cpu"))
    other = torch.float32 if dtype == torch.bfloat16 else torch.bfloat16
    assert na.status(other) == REASONS[other]  # the other path is judged on its own


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(na.CACHE_ENV, str(tmp_path))
    assert na.cache_dir() == tmp_path / "kernels"
    monkeypatch.delenv(na.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert na.cache_dir() == tmp_path / "xdg" / "e5kit" / "kernels"


def test_reference_keeps_float64():
    qkv, offsets = _qkv([3, 4], 2, 32, torch.float32)
    assert na.reference(qkv.double(), offsets, 2).dtype == torch.float64
    assert na.reference(qkv.bfloat16(), offsets, 2).dtype == torch.float32
    assert na.reference(qkv.bfloat16(), offsets, 2, torch.bfloat16).dtype == torch.bfloat16


def test_a_qualifying_machine_that_cannot_build_warns(monkeypatch, caplog):
    import logging

    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setattr(na, "unsupported_reason", lambda dtype: None)
    monkeypatch.setattr(na, "_compiler", lambda: None)
    with caplog.at_level(logging.INFO, logger="e5kit"):
        na.status(torch.float32)
    assert [r.levelname for r in caplog.records if "attention off" in r.message] == ["WARNING", "WARNING"]


def test_a_cpu_without_the_flags_only_informs(monkeypatch, caplog):
    import logging

    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setattr(na, "unsupported_reason", lambda dtype: "this CPU lacks avx512f")
    with caplog.at_level(logging.INFO, logger="e5kit"):
        assert na.status(torch.float32) == "this CPU lacks avx512f"
    assert {r.levelname for r in caplog.records if "attention off" in r.message} == {"INFO"}


def test_a_kernel_that_crashes_takes_down_a_child_not_the_caller(monkeypatch, tmp_path):
    import sys

    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setenv(na.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(na.PROBE_ENV, raising=False)
    monkeypatch.setattr(na, "_probe_command", lambda: [
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    if na.unsupported_reason(torch.float32) or na._compiler() is None:
        pytest.skip(f"no kernel can be built here: {na.unsupported_reason(torch.float32) or 'no compiler'}")
    reason = na.status(torch.float32)
    assert reason.startswith("its first run crashed a child process (signal 11)")
    assert not na.usable(32, torch.float32, torch.device("cpu"))
    assert not list((tmp_path / "kernels").glob("*.ok"))  # not marked as checked: the next process probes again


def test_a_new_library_is_first_run_in_a_child_and_marked(monkeypatch, tmp_path):
    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setenv(na.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(na.PROBE_ENV, raising=False)
    if na.unsupported_reason(torch.float32) or na._compiler() is None:
        pytest.skip(f"no kernel can be built here: {na.unsupported_reason(torch.float32) or 'no compiler'}")
    assert na.status(torch.float32) == REASONS[torch.float32]
    markers = list((tmp_path / "kernels").glob("*.ok"))
    assert len(markers) == 1 and "float32: on" in markers[0].read_text()
    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setattr(na, "_probe_command", lambda: ["false"])  # marked: no second child
    assert na.status(torch.float32) == REASONS[torch.float32]


def test_no_python_to_probe_with_keeps_it_off(monkeypatch, tmp_path):
    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setenv(na.CACHE_ENV, str(tmp_path))
    monkeypatch.delenv(na.PROBE_ENV, raising=False)
    monkeypatch.setattr(na.sys, "executable", "")
    if na.unsupported_reason(torch.float32) or na._compiler() is None:
        pytest.skip(f"no kernel can be built here: {na.unsupported_reason(torch.float32) or 'no compiler'}")
    assert "no Python executable" in na.status(torch.float32)
