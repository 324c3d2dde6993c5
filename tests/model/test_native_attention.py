"""e5kit's AMX bf16 attention kernel: right where it runs, refused clearly where it cannot, never half-built."""

from __future__ import annotations

import pytest
import torch

from e5kit.model import native_attention as na
from tests.conftest import make_tiny_bert

AVAILABLE = na.status()  # None, or why the kernel is off on this machine (builds it once if it can)
needs_kernel = pytest.mark.skipif(AVAILABLE is not None, reason=f"native attention off here: {AVAILABLE}")


def _qkv(lengths: list[int], heads: int, d: int, seed: int = 0,
         scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    offsets = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    offsets[1:] = torch.cumsum(torch.tensor(lengths), 0)
    qkv = (torch.randn(int(offsets[-1]), 3 * heads * d, generator=gen) * scale).bfloat16()
    return qkv, offsets


def _sdpa_bf16_error(qkv: torch.Tensor, offsets: torch.Tensor, heads: int, want: torch.Tensor) -> float:
    """How far torch's own bf16 SDPA lands from the fp32 reference: the bar the kernel must meet."""
    d = qkv.shape[1] // (3 * heads)
    worst = 0.0
    for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True):
        q, k, v = qkv[start:end].view(end - start, 3, heads, d).permute(1, 2, 0, 3).unbind(0)
        got = torch.nn.functional.scaled_dot_product_attention(q, k, v).transpose(0, 1).reshape(end - start, -1)
        worst = max(worst, (got.float() - want[start:end]).abs().max().item())
    return worst


@needs_kernel
@pytest.mark.parametrize("d", na.HEAD_DIMS)
@pytest.mark.parametrize("lengths", [[1], [16], [31, 32, 33], [256] * 3 + [250, 200, 17, 2], [512, 77]])
def test_matches_torch_attention_as_closely_as_torch_bf16(d, lengths):
    heads = 12 if d == 32 else 6
    qkv, offsets = _qkv(lengths, heads, d, seed=len(lengths) + d)
    want = na.reference(qkv, offsets, heads)
    got = na.attention(qkv, offsets, heads).float()
    assert got.shape == want.shape and torch.isfinite(got).all()
    err = (got - want).abs().max().item()
    assert err <= max(1.5 * _sdpa_bf16_error(qkv, offsets, heads, want), 1e-2), err
    cos = torch.nn.functional.cosine_similarity(got, want, dim=1)
    assert cos.min().item() > 0.9999


@needs_kernel
def test_extreme_scores_stay_finite_and_pick_the_right_key():
    # Scores thousands apart: exp underflows to 0 for all but the best key, never to NaN or garbage
    heads, d = 2, 32
    qkv, offsets = _qkv([40], heads, d, scale=30.0)
    got = na.attention(qkv, offsets, heads).float()
    want = na.reference(qkv, offsets, heads)
    assert torch.isfinite(got).all()
    assert torch.nn.functional.cosine_similarity(got, want, dim=1).min().item() > 0.999


@needs_kernel
def test_long_text_and_many_texts():
    heads, d = 4, 64
    qkv, offsets = _qkv([2048, 1, 3, 700], heads, d)
    got = na.attention(qkv, offsets, heads).float()
    want = na.reference(qkv, offsets, heads)
    assert torch.nn.functional.cosine_similarity(got, want, dim=1).min().item() > 0.9999


@needs_kernel
def test_same_answer_at_any_thread_count():
    qkv, offsets = _qkv([100, 64, 3], 12, 32)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = na.attention(qkv, offsets, 12)
        torch.set_num_threads(max(2, before))
        many = na.attention(qkv, offsets, 12)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one, many)  # each (text, head) is computed by one thread, the same way


@needs_kernel
@pytest.mark.parametrize("bad, message", [
    (lambda q, o: (q.float(), o, 12), "bf16 CPU"),
    (lambda q, o: (q[:, :-1], o, 12), "not 3 x heads"),
    (lambda q, o: (q, o, 0), "not 3 x heads"),
    (lambda q, o: (q, o.int(), 12), "int64"),
    (lambda q, o: (q, o[:1], 12), "at least two"),
    (lambda q, o: (q, o + 1, 12), "from 0"),
    (lambda q, o: (q, torch.tensor([0, 5, 5, q.shape[0]]), 12), "at least one token"),
    (lambda q, o: (q.view(2, -1, q.shape[1]), o, 12), "2-D"),
])
def test_malformed_input_is_refused(bad, message):
    qkv, offsets = _qkv([5, 7], 12, 32)
    with pytest.raises(ValueError, match=message):
        na.attention(*bad(qkv, offsets))


@needs_kernel
def test_unsupported_head_size_is_refused_not_guessed():
    qkv, offsets = _qkv([5], 2, 48)
    assert not na.usable(48, torch.bfloat16, torch.device("cpu"))
    with pytest.raises(ValueError, match="head size 48"):
        na.attention(qkv, offsets, 2)


@needs_kernel
def test_packed_bert_uses_it_and_agrees_with_sdpa(tmp_path, monkeypatch):
    from e5kit.model.packed import PackedBatch, PackedBert

    path = make_tiny_bert(tmp_path, hidden=128, layers=2, max_positions=128)  # 4 heads of 32
    from transformers import BertModel

    model = BertModel.from_pretrained(path).to(torch.bfloat16).eval()
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
    assert torch.nn.functional.cosine_similarity(native, sdpa, dim=1).min().item() > 0.999


def test_reasons_name_what_is_missing(monkeypatch):
    monkeypatch.delenv(na.ENV_SWITCH, raising=False)
    assert "lacks amx_bf16, amx_tile" in na.unsupported_reason(frozenset({"avx512f", "avx512bw", "avx512_bf16"}),
                                                               "x86_64")
    assert "x86-64" in na.unsupported_reason(frozenset(na.REQUIRED_FLAGS), "aarch64")
    monkeypatch.setenv(na.ENV_SWITCH, "0")
    assert "turned off" in na.unsupported_reason(frozenset(na.REQUIRED_FLAGS), "x86_64")


def test_switched_off_means_torch_serves(monkeypatch):
    monkeypatch.setenv(na.ENV_SWITCH, "off")
    monkeypatch.setattr(na, "_state", {})
    assert "turned off" in na.status()
    assert not na.usable(32, torch.bfloat16, torch.device("cpu"))
    qkv, offsets = _qkv([3], 12, 32)
    with pytest.raises(RuntimeError, match="not available: turned off"):
        na.attention(qkv, offsets, 12)


def test_never_on_other_dtypes_or_devices():
    assert not na.usable(32, torch.float32, torch.device("cpu"))
    assert not na.usable(32, torch.bfloat16, torch.device("meta"))


def test_a_failed_build_leaves_it_off_and_nothing_half_written(monkeypatch, tmp_path):
    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setattr(na, "unsupported_reason", lambda: None)
    monkeypatch.setenv(na.CACHE_ENV, str(tmp_path))
    fake = tmp_path / "fake-cxx"
    fake.write_text("#!/bin/sh\necho 'fake compiler 1.0'\n[ \"$1\" = --version ] && exit 0\necho broken >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(na, "_compiler", lambda: str(fake))
    reason = na.status()
    assert reason.startswith("building or loading it failed") and "broken" in reason
    assert list((tmp_path / "kernels").iterdir()) == []  # no temporary file, no partial library left behind


def test_no_compiler_is_a_reason(monkeypatch):
    monkeypatch.setattr(na, "_state", {})
    monkeypatch.setattr(na, "unsupported_reason", lambda: None)
    monkeypatch.setattr(na, "_compiler", lambda: None)
    assert "no C++ compiler" in na.status()


@needs_kernel
def test_a_kernel_that_disagrees_is_not_used(monkeypatch):
    monkeypatch.setattr(na, "_state", {})
    real = na._call
    monkeypatch.setattr(na, "_call", lambda lib, qkv, off, heads: real(lib, qkv, off, heads) * 1.1)
    assert "self-check failed" in na.status()
    assert not na.usable(32, torch.bfloat16, torch.device("cpu"))


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(na.CACHE_ENV, str(tmp_path))
    assert na.cache_dir() == tmp_path / "kernels"
    monkeypatch.delenv(na.CACHE_ENV)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert na.cache_dir() == tmp_path / "xdg" / "e5kit" / "kernels"
