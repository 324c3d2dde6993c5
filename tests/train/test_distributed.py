"""2 processes on CPU (gloo) == 1 process on the same global batch: loss, gradients, and trained weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from e5kit.train.distributed import DistInfo, gather_with_grad, local_slice
from e5kit.train.gradcache import GradientCache, full_batch_backward
from e5kit.train.loss import info_nce
from tests.train.helpers import WORDS, tiny_config, write_pairs

GLOBAL_BATCH = 8


def _batches(tok, lo, hi):
    g = torch.Generator().manual_seed(0)
    qs = [" ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (3,), generator=g)) for _ in range(GLOBAL_BATCH)]
    ps = [" ".join(WORDS[int(i)] for i in torch.randint(len(WORDS), (9,), generator=g)) for _ in range(GLOBAL_BATCH)]
    out = []
    for texts in (qs[lo:hi], ps[lo:hi]):
        enc = tok(texts, padding=True, return_tensors="pt")
        out.append({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    return out


def _loss(reps):
    return info_nce(gather_with_grad(reps[0]), gather_with_grad(reps[1]), temperature=0.01)


def _rows_loss(info, symmetric=False):
    """What the trainer runs under DDP: each rank scores only its own queries against all passages."""
    def fn(reps):
        q, p = gather_with_grad(reps[0]), gather_with_grad(reps[1])
        return info_nce(q, p, temperature=0.01, symmetric=symmetric, rows=local_slice(q.shape[0], info))
    return fn


def _worker(rank: int, world: int, model_dir: str, store: str, out_dir: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    model = AutoModel.from_pretrained(model_dir).float().eval()
    model.pooler.requires_grad_(False)
    ddp = DistributedDataParallel(model, broadcast_buffers=False)
    info = DistInfo(rank, world)
    rows = local_slice(GLOBAL_BATCH, info)
    batches = _batches(AutoTokenizer.from_pretrained(model_dir), rows.start, rows.stop)
    result = {}
    for name, loss_fn in (("full", _loss), ("rows", _rows_loss(info)), ("rows-sym", _rows_loss(info, True))):
        model.zero_grad(set_to_none=True)
        out = GradientCache(ddp, chunk_size=3).backward(batches, loss_fn)
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        result[name] = {"loss": out.loss.item(), "accuracy": out.accuracy, "grads": grads}
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy_process_group()


def test_two_processes_equal_one_on_the_global_batch(tiny_model, tmp_path):
    """Both ways of splitting the loss: every rank the full global loss, or (the trainer's) its own rows."""
    from transformers import AutoModel, AutoTokenizer

    torch.multiprocessing.spawn(_worker, args=(2, str(tiny_model), str(tmp_path / "store"), str(tmp_path)), nprocs=2)
    runs = [torch.load(tmp_path / f"rank{rank}.pt") for rank in (0, 1)]
    for name, symmetric in (("full", False), ("rows", False), ("rows-sym", True)):
        model = AutoModel.from_pretrained(tiny_model).float().eval()
        model.pooler.requires_grad_(False)
        ref = full_batch_backward(model, _batches(AutoTokenizer.from_pretrained(tiny_model), 0, GLOBAL_BATCH),
                                  lambda r, s=symmetric: info_nce(r[0], r[1], temperature=0.01, symmetric=s))
        ref_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
        scale = max(g.abs().max().item() for g in ref_grads.values())
        for rank, run in enumerate(runs):
            got = run[name]
            worst = max((got["grads"][k] - ref_grads[k]).abs().max().item() for k in ref_grads)
            print(f"DDP {name} rank {rank}: loss {got['loss']:.8f} vs 1 process {ref.loss.item():.8f}; "
                  f"max |grad diff| {worst:.2e} (largest grad {scale:.2e})")
            assert set(got["grads"]) == set(ref_grads)
            assert worst <= 1e-5 * max(1.0, scale)
        if name == "full":  # every rank computed the global loss itself
            assert all(run[name]["loss"] == pytest.approx(ref.loss.item(), abs=1e-5) for run in runs)
            assert all(run[name]["accuracy"] == ref.accuracy for run in runs)
        else:  # equal slices: the mean of the ranks' losses and accuracies is the global one
            assert sum(run[name]["loss"] for run in runs) / 2 == pytest.approx(ref.loss.item(), abs=1e-5)
            assert sum(run[name]["accuracy"] for run in runs) / 2 == pytest.approx(ref.accuracy)


def test_local_slice():
    assert local_slice(8, DistInfo(1, 2)) == slice(4, 8)
    assert local_slice(8, DistInfo()) == slice(0, 8)
    with pytest.raises(ValueError, match="not divisible"):
        local_slice(7, DistInfo(0, 2))


def test_gather_is_identity_without_a_process_group():
    x = torch.ones(2, 3)
    assert gather_with_grad(x) is x


def test_torchrun_training_matches_single_process(tiny_model, tmp_path):
    """The whole trainer under torchrun (2 CPU processes) ends with the weights of a 1-process run."""
    from safetensors.torch import load_file

    from e5kit.train.trainer import train

    pairs = write_pairs(tmp_path / "pairs.jsonl", 100)
    single = train(tiny_config(tiny_model, pairs, tmp_path / "one", steps=3, save_every=3))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "e5kit",
           "train", "--no-progress", "--output-dir", str(tmp_path / "two"), "--init", str(tiny_model),
           "--set", f"sources=[{{name: s, paths: [{pairs}]}}]", "--steps", "3", "--batch-size", "8",
           "--chunk-size", "3", "--lr", "1e-3", "--save-every", "3", "--max-length", "32", "--device", "cpu",
           "--set", "warmup_steps=2", "--set", "shuffle_buffer=32", "--set", "dropout=false"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    a = load_file(str(single / "model.safetensors"))
    b = load_file(str(tmp_path / "two" / "checkpoints" / "step-0000003" / "model.safetensors"))
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    print(f"torchrun 2 processes vs 1 process after 3 AdamW steps: max |weight diff| {worst:.2e}")
    assert worst <= 1e-5
    # each rank scores only its own queries; the logged loss/accuracy are averaged over ranks = the global ones
    logged = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
              for run in ("one", "two")]
    assert [r["step"] for r in logged[0]] == [r["step"] for r in logged[1]] == [1, 2, 3]
    for one, two in zip(*logged, strict=True):
        assert two["loss"] == pytest.approx(one["loss"], abs=1e-5)
        assert two["accuracy"] == pytest.approx(one["accuracy"])
