"""The benchmark's measuring parts: FLOP counts, RSS sampling, runners, tables, CLI argument checks."""

from __future__ import annotations

import json
import types

import numpy as np
import pytest
import torch

from e5kit.cli import main
from e5kit.encode import bench as B


def test_encoder_flops_by_hand():
    cfg = types.SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=2)
    # per layer, T=3: 2*3*(4*16 + 2*4*8) + 4*9*4 = 768 + 144 = 912
    assert B.encoder_flops(cfg, [3]) == 2 * 912
    assert B.encoder_flops(cfg, [3, 3]) == 4 * 912
    assert B.encoder_flops(cfg, []) == 0


def test_peak_rss_sees_an_allocation():
    with B.PeakRss(interval=0.001) as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MB touched
        block.sum()
    assert mem.peak >= B.rss_bytes() - 1 and mem.peak > 64 * 2**20
    assert B.matmul_peak(torch.float32, torch.device("cpu"), n=64, reps=1) > 0
    assert np.isnan(B.matmul_peak(torch.float16, torch.device("cpu")))


def test_run_speed_rows_and_table(tiny_bert):
    texts = ["passage: the cell", "passage: water and fire " * 5, "passage: protein"]
    modes = ("fp32", "fp32-hf", "bf16", "int8")
    runners = [B.e5kit_runner(tiny_bert, mode, torch.device("cpu"), 256, 64) for mode in modes]
    cfg = types.SimpleNamespace(hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    rows = B.run_speed(runners, texts, lengths=[5, 20, 4], config=cfg, device=torch.device("cpu"), reps=2,
                       peaks={"float32": 1e9, "bfloat16": 2e9}, log=lambda _: None)
    assert [r.name for r in rows] == ["e5kit fp32", "e5kit fp32-hf", "e5kit bf16", "e5kit int8"]
    assert rows[0].ratio_to_st == 1.0 and rows[0].max_abs_diff == 0.0
    assert rows[1].max_abs_diff <= 1e-5 and rows[2].min_cosine > 0.99
    assert all(len(r.all_seconds) == 2 and r.tokens_per_s > 0 and r.peak_rss_mb > 0 for r in rows)
    assert rows[2].peak_fraction > 0 and np.isnan(rows[3].peak_fraction)  # int8 is not a fraction of fp32's peak
    table = B.markdown_table(rows)
    assert table.count("\n") == 5 and "e5kit fp32-hf" in table and "| n/a |" in table
    json.dumps(B.rows_json(rows))


def test_bad_modes_fail_clearly(tiny_bert):
    with pytest.raises(ValueError, match="precision"):
        B.e5kit_runner(tiny_bert, "fp8", torch.device("cpu"), 256, 64)
    with pytest.raises(ValueError, match="backend"):
        B.e5kit_runner(tiny_bert, "fp32-onnx", torch.device("cpu"), 256, 64)
    with pytest.raises(ValueError, match="sizes"):
        B.run_encode_bench(sizes=["huge"])
    with pytest.raises(ValueError, match="reps"):
        B.run_encode_bench(sizes=["minilm"], reps=0)


def test_synthetic_checkpoint_and_texts(tmp_path):
    texts = B.synthetic_texts(200, seed=1)
    assert texts == B.synthetic_texts(200, seed=1) and all(t.startswith("passage: ") for t in texts)
    words = [len(t.split()) - 1 for t in texts]
    assert 120 < np.mean(words) < 320 and max(words) > 512  # SciFact-like spread with some over the limit
    path = B.make_random_bert(tmp_path / "rb", None, layers=1, hidden=16, heads=2, intermediate=32, positions=64)
    from e5kit import E5

    m = E5(path)
    assert m.dim == 16 and m.max_seq_length == 64
    assert m.count_tokens(texts[:3])[0] == 64  # synthetic words are whole vocabulary entries


@pytest.mark.parametrize("argv", [["bench", "--texts", "0"], ["bench", "--batch-size", "0"],
                                  ["bench", "--data", "/nonexistent/dir"]])
def test_cli_rejects_bad_arguments(argv, capsys):
    assert main(argv) == 1
    assert "e5kit bench: error:" in capsys.readouterr().err


def test_quality_metrics_on_a_tiny_fake_dataset(tmp_path, tiny_bert):
    import gzip

    root = tmp_path / "scifact"
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "title": t, "text": t} for i, t in enumerate(["water", "fire", "protein cell"])]
    with gzip.open(root / "corpus.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(d) for d in docs))
    with gzip.open(root / "queries.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps({"_id": f"q{i}", "text": d["text"]}) for i, d in enumerate(docs)))
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\td{i}\t1\n" for i in range(3)))
    ident = np.eye(3, dtype=np.float32)
    enc = lambda texts: ident[[["water", "fire", "protein"].index(t.split()[0]) for t in texts]]  # noqa: E731
    assert B.scifact_ndcg10(enc, tmp_path) == pytest.approx(1.0)
    (tmp_path / "sts").mkdir()
    with gzip.open(tmp_path / "sts" / "stsbenchmark.test.jsonl.gz", "wt") as fh:
        rows = [("water", "water", 5.0), ("water", "fire", 0.0), ("fire", "fire", 4.0)]
        fh.write("\n".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) for a, b, s in rows))
    assert B.stsb_spearman(enc, tmp_path) == pytest.approx(0.866, abs=0.01)
