"""Distillation loss: KL(teacher || student) + alpha x InfoNCE; its gradients with GradCache and under DDP
equal the full-batch ones; teacher scores line up with the trainer's negatives; config and trainer wiring."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from e5kit.data.pairs import Pair
from e5kit.train.config import ConfigError, Distill, load_config
from e5kit.train.distill import distill_loss, teacher_matrix
from e5kit.train.distributed import DistInfo, gather_with_grad, local_slice
from e5kit.train.gradcache import GradientCache, full_batch_backward
from e5kit.train.loss import info_nce
from tests.train.helpers import WORDS, tiny_config, write_pairs

K = 3


def _unit(*shape, seed=0, dtype=torch.float64):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return F.normalize(x, dim=-1)


def test_loss_is_kl_plus_alpha_infonce_by_hand():
    q, p, negs = _unit(4, 8, seed=1), _unit(4, 8, seed=2), _unit(4 * K, 8, seed=3)
    teacher = torch.randn(4, 1 + K, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * 3
    out = distill_loss(q, p, negs, teacher, temperature=0.02, teacher_temperature=2.0, alpha=0.2)
    kl = 0.0
    for i in range(4):
        cands = [p[i]] + [negs[i * K + j] for j in range(K)]
        s = torch.stack([q[i] @ c for c in cands]) / 0.02
        log_ps = s - torch.logsumexp(s, 0)
        pt = torch.softmax(teacher[i] / 2.0, 0)
        kl += float((pt * (pt.log() - log_ps)).sum())
    nce = info_nce(q, p, negatives=negs, temperature=0.02).loss.item()
    assert out.loss.item() == pytest.approx(kl / 4 + 0.2 * nce, rel=1e-6)  # scores in fp32, as info_nce
    assert out.accuracy == info_nce(q, p, negatives=negs, temperature=0.02).accuracy


def test_student_matching_the_teacher_has_zero_kl():
    q, p, negs = _unit(3, 8, seed=5), _unit(3, 8, seed=6), _unit(3 * K, 8, seed=7)
    cands = torch.cat([p.unsqueeze(1), negs.view(3, K, 8)], dim=1)
    teacher = torch.einsum("bh,bch->bc", q, cands) / 0.05 * 1.5  # the student's logits at teacher_temperature 1.5
    out = distill_loss(q, p, negs, teacher, temperature=0.05, teacher_temperature=1.5, alpha=0.0)
    assert out.loss.item() == pytest.approx(0.0, abs=1e-6)


def test_rows_without_teacher_scores_add_no_kl_but_count_in_the_mean():
    q, p, negs = _unit(4, 8, seed=8), _unit(4, 8, seed=9), _unit(4 * K, 8, seed=10)
    teacher = torch.randn(4, 1 + K, generator=torch.Generator().manual_seed(11), dtype=torch.float64)
    masked = teacher.clone()
    masked[1:] = math.nan
    only_first = distill_loss(q, p, negs, masked, temperature=0.05, alpha=0.0).loss
    first = distill_loss(q[:1], p[:1], negs[:K], teacher[:1], temperature=0.05, alpha=0.0).loss
    assert only_first.item() == pytest.approx(first.item() / 4, rel=1e-6)
    none = distill_loss(q, p, negs, torch.full_like(teacher, math.nan), temperature=0.05, alpha=0.5).loss
    assert none.item() == pytest.approx(0.5 * info_nce(q, p, negatives=negs, temperature=0.05).loss.item())
    assert torch.isfinite(none)


def test_rows_split_sums_to_the_whole():
    """The loss of rows 0..1 plus rows 2..3, each a mean over its rows, is twice the whole batch's loss."""
    q, p, negs = _unit(4, 8, seed=12), _unit(4, 8, seed=13), _unit(4 * K, 8, seed=14)
    t = torch.randn(4, 1 + K, generator=torch.Generator().manual_seed(15), dtype=torch.float64)
    whole = distill_loss(q, p, negs, t, temperature=0.02).loss
    halves = [distill_loss(q, p, negs, t[r], temperature=0.02, rows=r).loss for r in (slice(0, 2), slice(2, 4))]
    assert (halves[0] + halves[1]).item() / 2 == pytest.approx(whole.item(), rel=1e-6)


@pytest.mark.parametrize("kwargs, match", [
    ({"negatives": torch.zeros(5, 8)}, "negatives must be"),
    ({"teacher": torch.zeros(4, 2)}, "teacher scores must be"),
    ({"teacher_temperature": 0.0}, "teacher_temperature"),
])
def test_bad_arguments(kwargs, match):
    args = {"q": _unit(4, 8), "p": _unit(4, 8, seed=1), "negatives": _unit(4 * K, 8, seed=2),
            "teacher": torch.zeros(4, 1 + K, dtype=torch.float64)}
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k in args}
    args.update(extra)
    with pytest.raises(ValueError, match=match):
        distill_loss(args["q"], args["p"], args["negatives"], args["teacher"], temperature=0.05, **kwargs)


def test_teacher_matrix_follows_the_trainer_negatives():
    """Negative j of a pair is negatives[j % n] in pair_texts; its teacher score must be the same one."""
    from e5kit.train.trainer import pair_texts

    pairs = [Pair("q0", "p0", "s", negatives=["n00", "n01"], teacher_scores=[9.0, 1.0, 2.0]),
             Pair("q1", "p1", "s", negatives=["n10"]),  # no teacher scores
             Pair("q2", "p2", "s")]  # no negatives: borrows the next passage, no KL
    t = teacher_matrix(pairs, 3)
    assert t[0].tolist() == [9.0, 1.0, 2.0, 1.0]
    assert torch.isnan(t[1]).all() and torch.isnan(t[2]).all()
    cfg = load_config(None, ["init=x", "sources=[{name: s, paths: [x]}]", "hard_negatives=3", "query_prefix=",
                             "passage_prefix="])
    assert pair_texts(pairs, cfg)[2][:3] == ["n00", "n01", "n00"]
    with pytest.raises(ValueError, match="k must be"):
        teacher_matrix(pairs, 0)


# -- GradCache and DDP: the combined loss's gradients equal the plain full-batch ones ----------------------------

@pytest.fixture(scope="module")
def loaded(tiny_model):
    from transformers import AutoModel, AutoTokenizer

    return AutoModel.from_pretrained(tiny_model), AutoTokenizer.from_pretrained(tiny_model)


def _texts(n, lo, hi, g):
    out = []
    for _ in range(n):
        ln = int(torch.randint(lo, hi, (1,), generator=g))
        out.append(" ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (ln,), generator=g)))
    return out


def _batches(tok, n, lo=0, hi=None):
    g = torch.Generator().manual_seed(0)
    groups = [_texts(n, 1, 4, g), _texts(n, 3, 12, g), _texts(n * K, 3, 12, g)]
    teacher = torch.randn(n, 1 + K, generator=g) * 4
    teacher[1] = math.nan  # one query without teacher scores
    hi = n if hi is None else hi
    sliced = [groups[0][lo:hi], groups[1][lo:hi], groups[2][lo * K:hi * K]]
    out = []
    for texts in sliced:
        enc = tok(texts, padding=True, return_tensors="pt")
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return out, teacher


def _distill_fn(teacher, rows_of=None):
    def fn(reps):
        q, p, negs = (gather_with_grad(r) for r in reps)
        rows = rows_of(q.shape[0]) if rows_of else None
        t = teacher[rows] if rows is not None else teacher
        return distill_loss(q, p, negs, t.to(q.dtype), temperature=0.02, teacher_temperature=1.0, alpha=0.2,
                            rows=rows)
    return fn


def _grads(model):
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("chunk, dtype", [(1, torch.float32), (3, torch.float32), (0, torch.float32),
                                          (2, torch.float64)])
def test_gradcache_gradients_equal_full_batch(loaded, chunk, dtype):
    import copy

    model = copy.deepcopy(loaded[0]).to(dtype).eval()
    batches, teacher = _batches(loaded[1], 7)
    full = full_batch_backward(model, batches, _distill_fn(teacher))
    ref = _grads(model)
    model.zero_grad(set_to_none=True)
    cached = GradientCache(model, chunk_size=chunk).backward(batches, _distill_fn(teacher))
    got = _grads(model)
    worst = max((got[k] - ref[k]).abs().max().item() for k in ref)
    scale = max(ref[k].abs().max().item() for k in ref)
    print(f"distill GradCache {dtype} chunk={chunk}: max |grad diff| = {worst:.2e} (largest grad {scale:.2e}); "
          f"loss {cached.loss.item():.8f} vs {full.loss.item():.8f}")
    assert set(got) == set(ref) and len(ref) > 10
    if dtype == torch.float32:
        assert worst <= 1e-5 * max(1.0, scale)
        assert cached.loss.item() == pytest.approx(full.loss.item(), abs=1e-5)
    else:
        assert worst <= 1e-10
        assert cached.loss.item() == pytest.approx(full.loss.item(), abs=1e-12)


GLOBAL = 8


def _ddp_worker(rank: int, world: int, model_dir: str, store: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    model = AutoModel.from_pretrained(model_dir).float().eval()
    model.pooler.requires_grad_(False)
    ddp = DistributedDataParallel(model, broadcast_buffers=False)
    info = DistInfo(rank, world)
    mine = local_slice(GLOBAL, info)
    batches, teacher = _batches(AutoTokenizer.from_pretrained(model_dir), GLOBAL, mine.start, mine.stop)
    out = GradientCache(ddp, chunk_size=3).backward(batches, _distill_fn(teacher, lambda n: local_slice(n, info)))
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    torch.save({"loss": out.loss.item(), "grads": grads}, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_equal_one(tiny_model, tmp_path):
    """Each rank scores its own queries (with its teacher rows) against all gathered candidates."""
    from transformers import AutoModel, AutoTokenizer

    torch.multiprocessing.spawn(_ddp_worker, args=(2, str(tiny_model), str(tmp_path / "store"), str(tmp_path)),
                                nprocs=2)
    runs = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    model = AutoModel.from_pretrained(tiny_model).float().eval()
    model.pooler.requires_grad_(False)
    batches, teacher = _batches(AutoTokenizer.from_pretrained(tiny_model), GLOBAL)
    ref = full_batch_backward(model, batches, _distill_fn(teacher))
    ref_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    scale = max(g.abs().max().item() for g in ref_grads.values())
    for rank, run in enumerate(runs):
        worst = max((run["grads"][k] - ref_grads[k]).abs().max().item() for k in ref_grads)
        print(f"distill DDP rank {rank}: max |grad diff| {worst:.2e} (largest grad {scale:.2e})")
        assert worst <= 1e-5 * max(1.0, scale)
    assert sum(r["loss"] for r in runs) / 2 == pytest.approx(ref.loss.item(), abs=1e-5)


# -- config and trainer ------------------------------------------------------------------------------------------

def _cfg(*extra):
    return load_config(None, ["init=x", "sources=[{name: s, paths: [x]}]", *extra])


def test_config_distill_section():
    assert _cfg().distill is None
    cfg = _cfg("distill={alpha: 0.3}", "hard_negatives=2").validate()
    assert cfg.distill == Distill(alpha=0.3, teacher_temperature=1.0)
    assert _cfg("distill=null").distill is None
    with pytest.raises(ConfigError, match="hard_negatives"):
        _cfg("distill={alpha: 0.2}").validate()
    with pytest.raises(ConfigError, match="teacher_temperature"):
        _cfg("distill={teacher_temperature: 0}", "hard_negatives=1").validate()
    with pytest.raises(ConfigError, match="distill.alpha"):
        _cfg("distill={alpha: -1}", "hard_negatives=1").validate()
    with pytest.raises(ConfigError, match="unknown config key distill.beta"):
        _cfg("distill={beta: 1}")
    with pytest.raises(ConfigError, match="query_max_length"):
        _cfg("query_max_length=-1").validate()


def test_trainer_distills_from_teacher_scores(tiny_model, tmp_path):
    """A distill run trains on pairs with teacher scores; with the teacher agreeing with InfoNCE it learns."""
    pairs = write_pairs(tmp_path / "p.jsonl", 64, negatives=2)
    rows = [json.loads(line) for line in pairs.read_text().splitlines()]
    for r in rows:
        r["teacher_scores"] = [8.0, 0.0, -1.0]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows))
    from e5kit.train.trainer import train

    cfg = tiny_config(tiny_model, pairs, tmp_path / "run", steps=4, save_every=4, hard_negatives=2,
                      distill=Distill(alpha=0.2), query_max_length=6)
    final = train(cfg)
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged] == [1, 2, 3, 4] and all(math.isfinite(r["loss"]) for r in logged)
    assert json.loads((final / "train_config.json").read_text())["distill"] == {"alpha": 0.2,
                                                                                 "teacher_temperature": 1.0}
