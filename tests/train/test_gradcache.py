"""GradCache gives the same parameter gradients as the plain full-batch computation."""

import pytest
import torch

from e5kit.train.gradcache import GradientCache, chunks, full_batch_backward
from e5kit.train.loss import info_nce
from tests.train.helpers import WORDS


@pytest.fixture(scope="module")
def loaded(tiny_model):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)


def _model_and_batches(loaded, n=7, negs=0, dtype=torch.float32):
    import copy

    model = copy.deepcopy(loaded[0]).to(dtype).eval()  # dropout off: both passes deterministic
    tok = loaded[1]
    g = torch.Generator().manual_seed(0)

    def texts(k, lo, hi):
        out = []
        for _ in range(k):
            ln = int(torch.randint(lo, hi, (1,), generator=g))
            out.append("query: " + " ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (ln,), generator=g)))
        return out

    def batch(t):
        enc = tok(t, padding=True, truncation=True, max_length=32, return_tensors="pt")
        return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

    groups = [batch(texts(n, 1, 4)), batch(texts(n, 3, 12))]
    if negs:
        groups.append(batch(texts(n * negs, 3, 12)))
    return model, groups


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _loss(symmetric=False):
    def fn(reps):
        return info_nce(reps[0], reps[1], negatives=reps[2] if len(reps) > 2 else None, temperature=0.01,
                        symmetric=symmetric)
    return fn


CASES = [(3, 0, False), (1, 0, True), (2, 2, False), (0, 1, True)]


@pytest.mark.parametrize("chunk, negs, symmetric, dtype", [c + (torch.float32,) for c in CASES]
                         + [(2, 2, True, torch.float64)])
def test_gradients_equal_full_batch(loaded, chunk, negs, symmetric, dtype):
    """fp32: equal within 1e-5 of the gradient scale (summation order differs); fp64: within 1e-10.

    With temperature 0.01 the largest gradients of this random tiny model are ~3-10, so the fp32
    bound is an absolute 1e-5 on unit-scale gradients and about 1e-4 here.
    """
    model, batches = _model_and_batches(loaded, negs=negs, dtype=dtype)
    full = full_batch_backward(model, batches, _loss(symmetric))
    ref = _grads(model)
    model.zero_grad(set_to_none=True)
    cached = GradientCache(model, chunk_size=chunk).backward(batches, _loss(symmetric))
    got = _grads(model)
    assert set(got) == set(ref) and len(ref) > 10
    worst = max((got[k] - ref[k]).abs().max().item() for k in ref)
    scale = max(ref[k].abs().max().item() for k in ref)
    print(f"GradCache {dtype} chunk={chunk} negs={negs} symmetric={symmetric}: max |grad diff| = {worst:.2e} "
          f"(largest grad {scale:.2e}); loss {cached.loss.item():.8f} vs {full.loss.item():.8f}")
    if dtype == torch.float32:
        assert worst <= 1e-5 * max(1.0, scale)
        assert cached.loss.item() == pytest.approx(full.loss.item(), abs=1e-5)
    else:
        assert worst <= 1e-10
        assert cached.loss.item() == pytest.approx(full.loss.item(), abs=1e-12)
    assert cached.accuracy == full.accuracy


def test_dropout_masks_replay_between_passes(loaded):
    """With dropout on, pass 2 must see pass 1's masks: one chunk of GradCache equals a plain pass."""
    model, batches = _model_and_batches(loaded)
    model.train()
    torch.manual_seed(3)
    # one group, one chunk: the plain computation consumes the RNG exactly as GradCache's pass 1
    full_batch_backward(model, batches[:1], lambda r: info_nce(r[0], r[0].flip(0)))
    ref = _grads(model)
    model.zero_grad(set_to_none=True)
    torch.manual_seed(3)
    GradientCache(model, chunk_size=0).backward(batches[:1], lambda r: info_nce(r[0], r[0].flip(0)))
    got = _grads(model)
    assert max((got[k] - ref[k]).abs().max().item() for k in ref) <= 1e-5


def test_chunks_trim_padding():
    ids = torch.tensor([[1, 2, 0, 0], [1, 0, 0, 0], [1, 2, 3, 4]])
    batch = {"input_ids": ids, "attention_mask": (ids > 0).long()}
    parts = list(chunks(batch, 2))
    assert [p["input_ids"].shape for p in parts] == [(2, 2), (1, 4)]
    assert list(chunks(batch, 0))[0]["input_ids"].shape == (3, 4)


def test_bad_arguments(loaded):
    model, _ = _model_and_batches(loaded, n=2)
    with pytest.raises(ValueError, match="chunk_size"):
        GradientCache(model, chunk_size=-1)
    with pytest.raises(ValueError, match="no token batches"):
        GradientCache(model, chunk_size=2).backward([], _loss())
