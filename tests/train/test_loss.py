import math

import pytest
import torch

from e5kit.model.pooling import l2_normalize
from e5kit.train.loss import info_nce


def _emb(n, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return l2_normalize(torch.randn(n, d, generator=g))


def test_matches_hand_computed_cross_entropy():
    q, p = _emb(4), _emb(4, seed=1)
    out = info_nce(q, p, temperature=0.05)
    scores = (q @ p.T / 0.05).tolist()
    expected = sum(math.log(sum(math.exp(s) for s in row)) - row[i] for i, row in enumerate(scores)) / 4
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


def test_accuracy_and_perfect_pairs():
    q = _emb(5)
    out = info_nce(q, q.clone(), temperature=0.01)
    assert out.accuracy == 1.0 and out.loss.item() < 1e-3
    shifted = info_nce(q, q.roll(1, dims=0), temperature=0.01)
    assert shifted.accuracy == 0.0 and shifted.loss.item() > 1.0


def test_symmetric_averages_both_directions():
    q, p = _emb(6), _emb(6, seed=2)
    forward = info_nce(q, p, temperature=0.1).loss
    backward = info_nce(p, q, temperature=0.1).loss
    assert info_nce(q, p, temperature=0.1, symmetric=True).loss.item() == pytest.approx(
        ((forward + backward) / 2).item(), rel=1e-6)


def test_hard_negatives_add_candidates():
    q, p, negs = _emb(3), _emb(3, seed=3), _emb(6, seed=4)
    with_negs = info_nce(q, p, negatives=negs, temperature=0.1).loss
    without = info_nce(q, p, temperature=0.1).loss
    assert with_negs.item() > without.item()  # more candidates in the softmax denominator
    # a hard negative identical to the query makes the loss large
    assert info_nce(q, p, negatives=q.repeat_interleave(2, 0), temperature=0.01).loss.item() > 1.0


def test_gradients_flow_to_both_sides():
    q, p = _emb(4).requires_grad_(), _emb(4, seed=5).requires_grad_()
    info_nce(q, p).loss.backward()
    assert q.grad.abs().sum() > 0 and p.grad.abs().sum() > 0


@pytest.mark.parametrize("kwargs, match", [
    (dict(q=torch.zeros(0, 4), p=torch.zeros(0, 4)), "empty"),
    (dict(q=torch.zeros(2, 4), p=torch.zeros(3, 4)), "same shape"),
    (dict(q=torch.zeros(4), p=torch.zeros(4)), "same shape"),
    (dict(q=torch.zeros(2, 4), p=torch.zeros(2, 4), temperature=0.0), "temperature"),
    (dict(q=torch.zeros(2, 4), p=torch.zeros(2, 4), negatives=torch.zeros(2, 3)), "negatives"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        info_nce(**kwargs)


@pytest.mark.parametrize("symmetric", [False, True])
def test_row_slices_add_up_to_the_full_loss(symmetric):
    """Row slices (one per DDP rank) are means over their rows: their average is the full loss, and
    so is the gradient of their sum divided by the number of slices."""
    q, p, negs = _emb(6).requires_grad_(), _emb(6, seed=6).requires_grad_(), _emb(12, seed=7)
    full = info_nce(q, p, negatives=negs, temperature=0.05, symmetric=symmetric)
    full.loss.backward()
    want_q, want_p = q.grad.clone(), p.grad.clone()
    q.grad = p.grad = None
    parts = [info_nce(q, p, negatives=negs, temperature=0.05, symmetric=symmetric, rows=slice(a, a + 2))
             for a in (0, 2, 4)]
    assert sum(o.loss.item() for o in parts) / 3 == pytest.approx(full.loss.item(), rel=1e-6)
    assert sum(o.accuracy for o in parts) / 3 == pytest.approx(full.accuracy)
    (sum(o.loss for o in parts) / 3).backward()
    assert torch.allclose(q.grad, want_q, atol=1e-6) and torch.allclose(p.grad, want_p, atol=1e-6)
    assert info_nce(q, p, rows=slice(0, 6)).loss.item() == pytest.approx(info_nce(q, p).loss.item())


@pytest.mark.parametrize("rows", [slice(0, 0), slice(4, 2), slice(0, 7), slice(0, 4, 2), slice(-2, None), (0, 2)])
def test_bad_row_slices_are_refused(rows):
    with pytest.raises(ValueError, match="rows must be"):
        info_nce(_emb(6), _emb(6, seed=1), rows=rows)
