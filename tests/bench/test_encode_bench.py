"""The benchmark's parts: FLOP counts, RSS sampling, runners, tables, quality through eval tasks, CLI checks."""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import numpy as np
import pytest
import torch

from e5kit.bench import checkpoints as C
from e5kit.bench import encode as B
from e5kit.bench import measure as M
from e5kit.bench import quality as Q
from e5kit.bench import report as R
from e5kit.bench import rss as RSS
from e5kit.cli import main


def test_encoder_flops_by_hand():
    cfg = types.SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=2)
    # per layer, T=3: 2*3*(4*16 + 2*4*8) + 4*9*4 = 768 + 144 = 912
    assert M.encoder_flops(cfg, [3]) == 2 * 912
    assert M.encoder_flops(cfg, [3, 3]) == 4 * 912
    assert M.encoder_flops(cfg, []) == 0


def test_peak_rss_sees_an_allocation():
    with RSS.PeakRss(interval=0.001) as mem:
        block = np.ones(64 * 2**20 // 8)  # 64 MB touched
        block.sum()
    assert mem.peak >= RSS.rss_bytes() - 1 and mem.peak > 64 * 2**20 and mem.start <= mem.peak
    assert M.matmul_peak(torch.float32, torch.device("cpu"), n=64, reps=1) > 0
    assert np.isnan(M.matmul_peak(torch.float16, torch.device("cpu")))


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
    table = R.markdown_table(rows)
    assert table.count("\n") == 5 and "e5kit fp32-hf" in table and "| n/a |" in table
    json.dumps([dataclasses.asdict(r) for r in rows])


def test_bad_modes_fail_clearly(tiny_bert):
    with pytest.raises(ValueError, match="precision"):
        B.e5kit_runner(tiny_bert, "fp8", torch.device("cpu"), 256, 64)
    with pytest.raises(ValueError, match="backend"):
        B.e5kit_runner(tiny_bert, "fp32-onnx", torch.device("cpu"), 256, 64)
    with pytest.raises(ValueError, match="sizes"):
        B.run_encode_bench(B.EncodeBenchSettings(sizes=["huge"]))
    with pytest.raises(ValueError, match="reps"):
        B.run_encode_bench(B.EncodeBenchSettings(sizes=["minilm"], reps=0))
    with pytest.raises(ValueError, match="quality needs"):
        B.EncodeBenchSettings(quality=True).check()


def test_synthetic_checkpoint_and_texts(tmp_path):
    texts = C.synthetic_texts(200, seed=1)
    assert texts == C.synthetic_texts(200, seed=1) and not any(t.startswith("passage: ") for t in texts)
    words = [len(t.split()) for t in texts]
    assert 120 < np.mean(words) < 320 and max(words) > 512  # SciFact-like spread with some over the limit
    path = C.make_random_bert(tmp_path / "rb", None, layers=1, hidden=16, heads=2, intermediate=32, positions=64)
    from e5kit import E5

    m = E5(path)
    assert m.dim == 16 and m.max_seq_length == 64
    assert m.count_tokens(texts[:3])[0] == 64  # synthetic words are whole vocabulary entries


@pytest.mark.parametrize("argv", [["bench", "--texts", "0"], ["bench", "--batch-size", "0"],
                                  ["bench", "--batch-tokens", "0"], ["bench", "--batch-tokens", "-4"],
                                  ["bench", "--data", "/nonexistent/dir"], ["bench", "--st-backends", "tensorrt"],
                                  ["bench", "--st-backends", "torch"]])
def test_cli_rejects_bad_arguments(argv, capsys):
    assert main(argv) == 1
    assert "e5kit bench: error:" in capsys.readouterr().err


def _tiny_eval_data(root):
    import gzip

    sci = root / "scifact"
    (sci / "qrels").mkdir(parents=True)
    words = ["water", "fire", "protein cell", "stone", "wind", "sand"]
    docs = [{"_id": f"d{i}", "title": t, "text": t} for i, t in enumerate(words)]
    with gzip.open(sci / "corpus.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps(d) for d in docs))
    with gzip.open(sci / "queries.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps({"_id": f"q{i}", "text": d["text"]}) for i, d in enumerate(docs[:3])))
    (sci / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(
        f"q{i}\td{i}\t1\n" for i in range(3)))
    (root / "sts").mkdir()
    with gzip.open(root / "sts" / "stsbenchmark.test.jsonl.gz", "wt") as fh:
        rows = [("water", "water", 5.0), ("water", "fire", 0.0), ("fire", "fire", 4.0), ("sand", "stone", 1.0)]
        fh.write("\n".join(json.dumps({"sentence1": a, "sentence2": b, "score": s}) for a, b, s in rows))


def test_quality_goes_through_eval_tasks(tmp_path, tiny_bert):
    """Queries equal to their documents: nDCG@10 is 1 whatever the weights; fp32 vs itself is inside budget."""
    from e5kit import E5

    _tiny_eval_data(tmp_path)
    q = Q.quality_table(lambda mode: E5(tiny_bert, precision=mode), ["fp32", "bf16"], tmp_path, log=lambda _: None)
    assert q["fp32"]["scifact_ndcg10"] == pytest.approx(1.0)
    assert q["fp32"]["d_ndcg10"] == 0.0 and q["fp32"]["min_cosine_to_fp32"] == pytest.approx(1.0)
    assert q["fp32"]["within_budget"] == 1.0 and -1 <= q["bf16"]["stsb_spearman"] <= 1
    assert "| fp32 |" in R.quality_markdown(q)
    data = Q.get_dataset("scifact", tmp_path).load()["data"]
    sub = Q.sub_corpus(data, 4)
    assert set(sub.corpus_ids) >= {"d0", "d1", "d2"} and len(sub.corpus_ids) == 4
    assert Q.sub_corpus(data, None) is data


def test_report_files(tmp_path):
    result = {"device": "cpu", "threads": 2, "sizes": {"minilm": {"texts": 3, "max_length": 256, "table": "|t|"}}}
    js, md = R.write_report(result, tmp_path / "out")
    assert json.loads(js.read_text())["threads"] == 2 and "## minilm: 3 texts" in md.read_text()


def test_cpu_info_reads_model_and_flags():
    text = "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx512_bf16 avx512_vnni sse\n"
    info = M.cpu_info(text)
    assert info["flags"] == {"amx_bf16": False, "amx_int8": False, "avx512_bf16": True, "avx512_vnni": True}
    assert "avx512_bf16 yes" in M.cpu_line(info) and "amx_int8 no" in M.cpu_line(info)
    assert set(M.cpu_info("")["flags"]) == set(M.CPU_FLAGS)  # nothing readable: every flag reported as absent
    here = M.cpu_info()
    assert here["model"] and set(here["flags"]) == set(M.CPU_FLAGS)


def test_skipped_rows_are_shown_with_the_reason(tiny_bert):
    runners = [B.e5kit_runner(tiny_bert, "fp32", torch.device("cpu"), 256, 64)]
    cfg = types.SimpleNamespace(hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    rows = B.run_speed(runners, ["passage: water"], lengths=[4], config=cfg, device=torch.device("cpu"), reps=1,
                       log=lambda _: None)
    table = R.markdown_table(rows, [{"name": "sentence-transformers onnx", "reason": "ImportError: no | optimum"}])
    last = table.splitlines()[-1]
    assert last.startswith("| sentence-transformers onnx | skipped: ImportError: no / optimum |")
    assert last.count("|") == table.splitlines()[0].count("|")  # as many cells as the header


def test_st_backend_rows_or_skip_reasons(tiny_bert, tmp_path):
    """Every sentence-transformers backend gives a row or a skip with the reason; rows agree with fp32."""
    from e5kit.bench.st_backends import StBackendMissing

    dev, got = torch.device("cpu"), {}
    for backend in ("torch", "onnx", "openvino", "openvino-int8"):
        try:
            got[backend] = B.st_runner(tiny_bert, dev, 8, 64, backend=backend, work_dir=tmp_path)
        except StBackendMissing as exc:
            got[backend] = str(exc)
            assert backend in str(exc) and len(str(exc)) > len(backend) + 30  # says which and why
    assert isinstance(got["torch"], B.Runner)
    texts = ["passage: the cell", "passage: water and fire " * 5]
    ref = got["torch"].encode(texts)
    for backend, r in got.items():
        if isinstance(r, B.Runner):
            assert r.name.startswith("sentence-transformers")
            cos = (r.encode(texts) * ref).sum(axis=1).min()
            assert cos > (0.9 if backend.endswith("int8") else 0.9999), backend
    with pytest.raises(ValueError, match="not one of"):
        B.st_runner(tiny_bert, dev, 8, 64, backend="tensorrt")


def test_make_runners_skips_what_cannot_run(tiny_bert, tmp_path, monkeypatch):
    from e5kit.bench.st_backends import RemoteSt
    from e5kit.encode import openvino as O

    monkeypatch.setattr(O, "openvino_missing", lambda: "OpenVINO backend needs openvino and nncf (test)")
    s = B.EncodeBenchSettings(sizes=["minilm"], modes=["fp32", "ov-bf16"], st_backends=["onnx"]).check()
    runners, skipped = B._make_runners(tiny_bert, s, torch.device("cpu"), 64, tmp_path)
    names = [r.name for r in runners]
    assert names[0] == "sentence-transformers" and "e5kit fp32" in names and "e5kit ov-bf16" not in names
    assert {"name": "e5kit ov-bf16", "reason": "precision 'ov-bf16': OpenVINO backend needs openvino and nncf "
            "(test)"} in skipped
    assert len(names) + len(skipped) == 4  # ST torch, ST onnx, fp32, ov-bf16: each a row or a skip
    fp32 = next(r for r in runners if r.name == "e5kit fp32")
    assert fp32.model.engine.batcher.max_tokens == 4096  # e5kit's own CPU default, not ST's batch x length
    # the reference runs in a process of its own with this Python, as a user's would
    assert isinstance(runners[0].st, RemoteSt) and runners[0].st.python == sys.executable
    for r in runners:
        r.close()
    s = B.EncodeBenchSettings(sizes=["minilm"], modes=["fp32"], st_backends=[], batch_tokens=512,
                              st_python="here").check()
    runners, _ = B._make_runners(tiny_bert, s, torch.device("cpu"), 64, tmp_path)
    assert runners[-1].model.engine.batcher.max_tokens == 512
    assert not isinstance(runners[0].st, RemoteSt)  # --st-python here: everything in this process
    with pytest.raises(ValueError, match="sentence-transformers backends"):
        B.EncodeBenchSettings(st_backends=["tensorrt"]).check()


def test_st_quality_adapter_encodes_like_e5(tiny_e5, tmp_path):
    """ST seen as an E5 through the eval tasks: same scores as e5kit fp32 on the same checkpoint."""
    import gzip

    from e5kit import E5
    from e5kit.bench.st_backends import StAsE5, st_model

    _tiny_eval_data(tmp_path)
    rows = [("water", "fire", 1.0), ("water and sand", "stone", 2.0), ("fire", "protein cell", 3.0),
            ("sand", "stone wind", 4.0), ("wind", "water fire", 0.5)]  # no identical pairs: no tied cosines
    with gzip.open(tmp_path / "sts" / "stsbenchmark.test.jsonl.gz", "wt") as fh:
        fh.write("\n".join(json.dumps({"sentence1": a, "sentence2": b, "score": x}) for a, b, x in rows))
    e5 = E5(tiny_e5)
    st = StAsE5(st_model(tiny_e5, "torch", "cpu", 64), e5.policy, "st")
    q = Q.quality_table(lambda name: e5 if name == "e5kit" else st, ["e5kit", "st"], tmp_path, log=lambda _: None)
    assert q["st"]["min_cosine_to_fp32"] > 0.99999 and abs(q["st"]["d_spearman"]) < 1e-6
    assert st.encode([]).shape == (0, e5.dim)
    blocks = list(st.iter_encode(iter(["water", "fire", "sand"]), prefix="passage: ", chunk=2))
    assert [len(b) for b in blocks] == [2, 1]
    np.testing.assert_allclose(np.concatenate(blocks), e5.encode_passages(["water", "fire", "sand"]), atol=1e-5)


def test_default_modes_leave_emulated_bf16_out_with_the_reason(monkeypatch):
    from e5kit.encode import precision as P

    monkeypatch.setattr(P, "cpu_has_fast_bf16", lambda: False)
    modes, skipped = B.default_modes(torch.device("cpu"))
    assert "bf16" not in modes and "ov-bf16" not in modes and {"fp32", "ov-int8"} <= set(modes)
    assert [s["name"] for s in skipped] == ["e5kit bf16", "e5kit ov-bf16"]
    assert "no bf16 instructions" in skipped[0]["reason"] and "--modes" in skipped[0]["reason"]
    monkeypatch.setattr(P, "cpu_has_fast_bf16", lambda: True)
    assert B.default_modes(torch.device("cpu")) == (list(B.MODES_CPU), [])
    assert B.default_modes(torch.device("cuda"))[0] == list(B.MODES_GPU)


def test_every_default_cpu_mode_makes_a_runner(tiny_bert):
    """What `e5kit bench` runs by default: each mode loads and its row knows its dtype (int8 kinds: no peak)."""
    from e5kit.encode.openvino import openvino_missing

    if openvino_missing():
        pytest.skip(openvino_missing())
    for mode in B.MODES_CPU:
        r = B.e5kit_runner(tiny_bert, mode, torch.device("cpu"), 256, 64)
        assert r.encode(["passage: water"]).shape[0] == 1
        assert (r.dtype == torch.int8) is ("int8" in mode), mode


def test_native_attention_line_says_on_or_why_not():
    from e5kit.model import native_attention

    assert B.native_attention_line(torch.device("cuda")).startswith("off: cuda")
    line = B.native_attention_line(torch.device("cpu"))
    for dtype, name in ((torch.bfloat16, "bfloat16"), (torch.float32, "float32")):
        reason = native_attention.status(dtype)
        want = f"{name} on ({native_attention.kernel_isa(dtype)})" if reason is None else f"{name} off ({reason})"
        assert want in line
    md = R.result_markdown({"device": "cpu", "threads": 2, "native_attention": line, "sizes": {}})
    assert f"native attention kernel: {line}" in md
