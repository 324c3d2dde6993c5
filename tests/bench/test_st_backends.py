"""sentence-transformers rows from another Python environment: the worker protocol, its failures, and
real ONNX / OpenVINO / OpenVINO static-int8 rows from the `make st-env` environment on a tiny model."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from e5kit.bench import encode as B
from e5kit.bench import report as R
from e5kit.bench import st_backends as S
from e5kit.bench import st_worker as W
from e5kit.cli import main

ST_PYTHON = Path(__file__).resolve().parents[2] / ".venv-st" / "bin" / "python"
needs_st_env = pytest.mark.skipif(not ST_PYTHON.is_file(),
                                  reason="no .venv-st (`make st-env` builds it; `make test` tries to)")
CPU = torch.device("cpu")


def _serve(*lines: str) -> list[dict]:
    out = io.StringIO()
    W.serve(io.StringIO("".join(line + "\n" for line in lines)), out)
    return [json.loads(x) for x in out.getvalue().splitlines()]


def test_worker_answers_every_request_and_errors_are_answers():
    answers = _serve(json.dumps({"op": "hello"}), "{not json", json.dumps({"op": "encode", "texts": ["a"]}),
                     json.dumps({"op": "fly"}), "", json.dumps({"op": "load", "path": "/x", "backend": "tensorrt",
                                                               "max_len": 8}),
                     json.dumps({"op": "quit"}), json.dumps({"op": "hello"}))
    assert len(answers) == 5  # the empty line is skipped; nothing after quit is answered
    assert answers[0]["versions"]["python"] == sys.version.split()[0] and "numpy" not in answers[0]["versions"]
    assert answers[1]["error"].startswith("JSONDecodeError")
    assert answers[2]["error"] == "RuntimeError: encode before load"
    assert answers[3]["error"] == "ValueError: unknown op 'fly'"
    assert "not one of" in answers[4]["error"] and "traceback" in answers[4]


def test_worker_load_and_encode_in_process(tiny_bert, tmp_path):
    out = tmp_path / "v.npy"
    # no "threads" here: in this process it would set torch's thread count for every later test
    answers = _serve(json.dumps({"op": "load", "path": str(tiny_bert), "backend": "torch", "max_len": 16}),
                     json.dumps({"op": "encode", "texts": ["passage: water", "passage: fire and sand"],
                                 "batch_size": 1, "out": str(out)}))
    assert answers[0]["dim"] > 0
    took = answers[1]
    assert took["wall"] > 0 and took["cpu"] >= 0 and took["peak_rss"] >= took["start_rss"] > 0
    vectors = np.load(out)
    assert vectors.shape == (2, answers[0]["dim"]) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    with pytest.raises(ValueError, match="calibration texts"):
        W.load_st(tiny_bert, "openvino-int8", "cpu", 16)


def test_resolve_st_python(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(S.ST_PYTHON_VAR, raising=False)
    assert S.resolve_st_python(None) is None  # no .venv-st here: this process
    assert S.resolve_st_python("here") is None
    with pytest.raises(ValueError, match="make st-env"):
        S.resolve_st_python(tmp_path / "missing" / "python")
    (tmp_path / "plain").write_text("not executable")
    with pytest.raises(ValueError, match="not an executable file"):
        S.resolve_st_python(tmp_path / "plain")
    made = tmp_path / ".venv-st" / "bin" / "python"
    made.parent.mkdir(parents=True)
    made.symlink_to(sys.executable)
    assert S.resolve_st_python(None) == made.absolute()
    monkeypatch.setenv(S.ST_PYTHON_VAR, sys.executable)
    assert S.resolve_st_python(None) == Path(sys.executable).absolute()
    with pytest.raises(ValueError, match="st-python|sentence-transformers Python"):
        B.EncodeBenchSettings(st_python=tmp_path / "nope").check()


def test_cli_rejects_a_missing_st_python(capsys, tmp_path):
    assert main(["bench", "--st-python", str(tmp_path / "nope")]) == 1
    assert "not an executable file" in capsys.readouterr().err


def test_worker_that_cannot_start_or_dies_is_a_skip_with_its_output(tiny_bert, tmp_path):
    broken = tmp_path / "python"
    broken.write_text("#!/bin/sh\necho 'no such interpreter today' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(S.StBackendMissing, match="exited with code 3(.|\n)*no such interpreter today"):
        S.RemoteSt(broken, tiny_bert, "onnx", 16, work_dir=tmp_path)
    with pytest.raises(ValueError, match="not one of"):
        S.RemoteSt(sys.executable, tiny_bert, "tensorrt", 16)


def test_python_without_sentence_transformers_is_a_skip(tiny_bert, tmp_path):
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    with pytest.raises(S.StBackendMissing, match="sentence-transformers does not import in .*bare"):
        S.RemoteSt(venv / "bin" / "python", tiny_bert, "onnx", 16, work_dir=tmp_path)


def test_remote_rows_use_the_workers_own_clock():
    class Fake:
        last = {"wall": 2.0, "cpu": 3.0, "peak_rss": 300 * 2**20, "start_rss": 100 * 2**20}

        def encode(self, texts, **_):
            return np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)

    fake = Fake()
    ref = B.Runner("reference", torch.float32, lambda t: np.ones((len(t), 2), dtype=np.float32) / np.sqrt(2))
    remote = B.Runner("sentence-transformers onnx", torch.float32, lambda t: fake.encode(t))
    remote.st = fake
    cfg = types.SimpleNamespace(hidden_size=2, intermediate_size=4, num_hidden_layers=1)
    rows = B.run_speed([ref, remote], ["a", "b"], lengths=[2, 2], config=cfg, device=CPU, reps=2, log=lambda _: None)
    assert rows[1].seconds == 2.0 and rows[1].cpu_seconds == 3.0
    assert rows[1].peak_rss_mb == 300 and rows[1].encode_rss_mb == 200
    assert rows[1].ratio_to_st == pytest.approx(rows[0].seconds / 2.0)


@pytest.fixture(scope="module")
def remote_runners(tiny_bert, tmp_path_factory):
    """ST torch in this process, and onnx / openvino / openvino-int8 from the st-env Python, on a tiny
    BERT with 512 positions (sentence-transformers' static int8 calibrates at 384 tokens)."""
    from e5kit.bench.checkpoints import make_random_bert

    if not ST_PYTHON.is_file():
        pytest.skip("no .venv-st (`make st-env` builds it; `make test` tries to)")
    work = tmp_path_factory.mktemp("st-env")
    path = make_random_bert(work / "bert-tiny-512", tiny_bert, layers=2, hidden=32, heads=2, intermediate=64)
    s = B.EncodeBenchSettings(sizes=["minilm"], modes=["fp32"], st_python=ST_PYTHON,
                              st_backends=["onnx", "openvino", "openvino-int8"]).check()
    runners, skipped = B._make_runners(path, s, CPU, 512, work)
    yield runners, skipped
    for r in runners:
        r.close()


@needs_st_env
def test_st_env_rows_agree_and_report_their_environment(remote_runners):
    runners, skipped = remote_runners
    assert skipped == [] and [r.name for r in runners] == [
        "sentence-transformers", "sentence-transformers onnx", "sentence-transformers openvino",
        "sentence-transformers openvino-int8", "e5kit fp32"]
    texts = ["passage: the cell", "passage: water and fire " * 5, "passage: protein"]
    cfg = types.SimpleNamespace(hidden_size=32, intermediate_size=64, num_hidden_layers=2)
    rows = B.run_speed(runners, texts, lengths=[5, 20, 4], config=cfg, device=CPU, reps=1, log=lambda _: None)
    by = {r.name: r for r in rows}
    assert by["sentence-transformers onnx"].max_abs_diff < 1e-5
    assert by["sentence-transformers openvino"].max_abs_diff < 1e-4
    assert 0.5 < by["sentence-transformers openvino-int8"].min_cosine < 1.0  # quantized: close, not equal
    for name in ("sentence-transformers onnx", "sentence-transformers openvino-int8"):
        assert by[name].cpu_seconds > 0 and by[name].peak_rss_mb > by[name].encode_rss_mb >= 0
    st = runners[1].st
    assert st.versions["sentence-transformers"] and "optimum-intel" in st.versions and st.dim == 32
    table = R.markdown_table(rows)
    assert table.count("sentence-transformers openvino-int8") == 1


@needs_st_env
def test_st_env_rows_through_the_quality_tasks(remote_runners, tmp_path, tiny_e5):
    """The --quality path: a worker's model seen as an E5 scores like ST torch in this process."""
    from e5kit import E5
    from e5kit.bench import quality as Q
    from tests.bench.test_encode_bench import _tiny_eval_data

    runners, _ = remote_runners
    _tiny_eval_data(tmp_path)
    load = B._quality_loader(runners, Path("tiny"), CPU, E5(tiny_e5).policy)
    q = Q.quality_table(load, ["sentence-transformers", "sentence-transformers onnx"], tmp_path,
                        log=lambda _: None)
    assert q["sentence-transformers onnx"]["min_cosine_to_fp32"] > 0.99999
    assert q["sentence-transformers onnx"]["scifact_ndcg10"] == pytest.approx(q["sentence-transformers"]
                                                                              ["scifact_ndcg10"])


@needs_st_env
def test_a_worker_that_dies_mid_run_says_so(tiny_bert, tmp_path):
    st = S.RemoteSt(ST_PYTHON, tiny_bert, "torch", 16, work_dir=tmp_path)
    assert st.encode(["passage: water"]).shape == (1, st.dim)
    st.proc.kill()
    st.proc.wait()
    with pytest.raises(RuntimeError, match="exited with code -9"):
        st.encode(["passage: water"])
    st.close()
    st.close()  # idempotent
