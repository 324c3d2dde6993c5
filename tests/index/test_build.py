import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from e5kit.errors import InputFormatError
from e5kit.index.build import build_index, parse_shard_spec
from e5kit.index.exact import topk
from e5kit.index.layout import IndexFormatError, IndexLayout
from e5kit.index.merge import merge_index
from e5kit.index.store import DenseIndex

from .helpers import doc_text, write_corpus


def shard_bytes(folder: Path) -> dict[str, bytes]:
    """Every shard file's bytes (vectors, copies, ids, metadata) by name."""
    return {p.name: p.read_bytes() for p in sorted((folder / "shards").iterdir()) if not p.name.startswith(".")}


def all_vectors(folder: Path) -> np.ndarray:
    ix = DenseIndex.open(folder)
    return np.concatenate(list(ix.blocks()))


def test_build_equals_model_and_search_is_exact(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 50)
    report = build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=16)
    assert (report.docs, report.shards, report.encoded_docs, report.complete) == (50, 4, 50, True)
    texts = [{"title": f"title {i % 5}", "text": doc_text(i)} for i in range(50)]
    expected = e5_tiny.encode_passages(texts)
    got = all_vectors(tmp_path / "ix")
    assert got.shape == (50, e5_tiny.dim)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    ix = DenseIndex.open(tmp_path / "ix")
    hits = ix.search(e5_tiny, ["cell water", "dark fire"], k=5)
    q = e5_tiny.encode_queries(["cell water", "dark fire"])
    scores, rows = topk(q, expected, 5)
    for query_hits, s, r in zip(hits, scores, rows, strict=True):
        assert [h.id for h in query_hits] == [f"d{i}" for i in r] or np.allclose([h.score for h in query_hits], s)
        np.testing.assert_allclose([h.score for h in query_hits], s, atol=1e-5)
        assert [h.rank for h in query_hits] == [1, 2, 3, 4, 5]
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    s = manifest["settings"]
    assert s["model_fingerprint"] == e5_tiny.fingerprint and s["prompts"] == e5_tiny.prompts
    assert s["passage_prefix"] == "passage: " and s["dim"] == e5_tiny.dim and s["precision"] == "fp32"
    assert manifest["complete"]["docs"] == 50 and len(manifest["complete"]["corpus_fingerprint"]) == 64


def test_rerun_of_finished_index_encodes_nothing(tmp_path, e5_tiny, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 20)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=8)
    before = shard_bytes(tmp_path / "ix")
    monkeypatch.setattr(e5_tiny, "iter_encode", lambda *a, **k: pytest.fail("re-encoded a finished shard"))
    report = build_index(corpus, tmp_path / "ix", model=e5_tiny)  # shard size taken from the index
    assert (report.encoded_docs, report.skipped_shards, report.complete) == (0, 3, True)
    assert shard_bytes(tmp_path / "ix") == before


KILL_SCRIPT = textwrap.dedent("""
    import sys
    from e5kit.index.build import build_index
    build_index(sys.argv[1], sys.argv[2], model=sys.argv[3], shard_size=6, quantize=["int8"], show_progress=False)
""")


def test_resume_after_sigkill_is_identical(tmp_path, e5_tiny, tiny_e5):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 240)
    folder = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILL_SCRIPT, str(corpus), str(folder), str(tiny_e5)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if len(list((folder / "shards").glob("?????.json"))) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the build ended before it could be killed: {proc.stderr.read().decode()[-500:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((folder / "shards").glob("?????.json")))
    assert 3 <= done < 40
    assert not IndexLayout(folder).read_manifest()["complete"]
    with pytest.raises(IndexFormatError, match="not complete"):
        DenseIndex.open(folder)

    report = build_index(corpus, folder, model=e5_tiny, show_progress=False)
    assert report.complete and report.skipped_shards >= done - 1 and report.encoded_docs <= 240 - 6 * (done - 1)
    build_index(corpus, tmp_path / "clean", model=e5_tiny, shard_size=6, quantize=["int8"])
    assert shard_bytes(folder) == shard_bytes(tmp_path / "clean")


def test_append_encodes_only_new_documents(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 40)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=16)  # shards of 16, 16, 8
    old = shard_bytes(tmp_path / "ix")
    write_corpus(tmp_path / "more.jsonl", 30, start=40)
    report = build_index([corpus, tmp_path / "more.jsonl"], tmp_path / "ix", model=e5_tiny)
    assert (report.encoded_docs, report.skipped_shards, report.docs, report.shards) == (30, 3, 70, 5)
    new = shard_bytes(tmp_path / "ix")
    assert all(new[name] == data for name, data in old.items())  # the base is untouched
    ix = DenseIndex.open(tmp_path / "ix")
    assert len(ix) == 70 and [m.count for m in ix.metas] == [16, 16, 8, 16, 14]
    assert ix.ids_of([0, 39, 40, 69]) == ["d0", "d39", "d40", "d69"]
    expected = e5_tiny.encode_passages([{"title": f"title {i % 5}", "text": doc_text(i)} for i in range(40, 70)])
    np.testing.assert_allclose(np.concatenate(list(ix.blocks()))[40:], expected, atol=1e-5)


def test_sharded_build_then_merge_equals_single_build(tmp_path, e5_tiny, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 45)
    folder = tmp_path / "split"
    r0 = build_index(corpus, folder, model=e5_tiny, shard_size=10, shard="0/2")
    assert not r0.complete and r0.encoded_shards == 3  # shards 0, 2, 4
    with pytest.raises(IndexFormatError, match="incomplete"):
        merge_index(folder)
    with pytest.raises(IndexFormatError, match="not complete"):
        DenseIndex.open(folder)
    monkeypatch.setenv("RANK", "1")  # as torchrun sets for the second process
    monkeypatch.setenv("WORLD_SIZE", "2")
    r1 = build_index(corpus, folder, model=e5_tiny)
    assert r1.complete and r1.encoded_shards == 2
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    merge_index(folder)  # idempotent
    build_index(corpus, tmp_path / "single", model=e5_tiny, shard_size=10)
    assert shard_bytes(folder) == shard_bytes(tmp_path / "single")
    assert len(DenseIndex.open(folder)) == 45


def test_slices_over_different_corpora_do_not_merge(tmp_path, e5_tiny):
    write_corpus(tmp_path / "a.jsonl", 30)
    write_corpus(tmp_path / "b.jsonl", 30, start=1)
    build_index(tmp_path / "a.jsonl", tmp_path / "ix", model=e5_tiny, shard_size=10, shard="0/2")
    with pytest.raises(IndexFormatError):
        build_index(tmp_path / "b.jsonl", tmp_path / "ix", model=e5_tiny, shard="1/2")


@pytest.mark.parametrize("spec", ["2/2", "1", "a/b", "-1/3", (0, 0)])
def test_bad_shard_spec(spec):
    with pytest.raises(ValueError):
        parse_shard_spec(spec)


def test_other_model_or_settings_refused(tmp_path, e5_tiny, bert_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 12)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=8)
    with pytest.raises(IndexFormatError, match="built by .*weights.*leave --model out"):
        build_index(corpus, tmp_path / "ix", model=bert_tiny)
    with pytest.raises(IndexFormatError, match="shard_size"):
        build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=4)
    with pytest.raises(IndexFormatError, match="dtype"):
        build_index(corpus, tmp_path / "ix", model=e5_tiny, dtype="float16")
    with pytest.raises(IndexFormatError, match="not the model that built"):
        DenseIndex.open(tmp_path / "ix").search(bert_tiny, ["x"], k=1)


def test_foreign_shard_is_refused(tmp_path, e5_tiny, bert_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 12)
    build_index(corpus, tmp_path / "a", model=e5_tiny, shard_size=8, merge=False)
    build_index(corpus, tmp_path / "b", model=bert_tiny, shard_size=8)
    for p in (tmp_path / "b" / "shards").glob("00000.*"):
        (tmp_path / "a" / "shards" / p.name).write_bytes(p.read_bytes())
    with pytest.raises(IndexFormatError, match="foreign"):
        build_index(corpus, tmp_path / "a", model=e5_tiny)


def test_corrupt_shards_are_caught(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 12)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=8)
    vec = tmp_path / "ix" / "shards" / "00001.f32.npy"
    data = bytearray(vec.read_bytes())
    data[-1] ^= 0xFF  # same size, altered value: only the checksum sees it
    vec.write_bytes(bytes(data))
    DenseIndex.open(tmp_path / "ix")
    with pytest.raises(IndexFormatError, match="shard 1: file 00001.f32.npy is corrupt .checksum"):
        merge_index(tmp_path / "ix", checksums=True)
    vec.write_bytes(bytes(data[:-40]))  # truncated
    with pytest.raises(IndexFormatError, match="corrupt"):
        DenseIndex.open(tmp_path / "ix")
    (tmp_path / "ix" / "shards" / "00000.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="corrupt shard metadata"):
        DenseIndex.open(tmp_path / "ix")
    (tmp_path / "ix" / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(IndexFormatError, match="manifest"):
        DenseIndex.open(tmp_path / "ix")
    with pytest.raises(IndexFormatError, match="not an e5kit index"):
        DenseIndex.open(tmp_path / "nothing")


def test_duplicate_ids_are_refused(tmp_path, e5_tiny):
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"_id": i, "text": f"text {n}"}) + "\n" for n, i in enumerate("abcdeb")))
    with pytest.raises(IndexFormatError, match="duplicate document id 'b'"):
        build_index(path, tmp_path / "ix", model=e5_tiny, shard_size=4)


def test_edited_or_shrunk_corpus_is_refused(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 20)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=8)
    lines = corpus.read_text().splitlines()
    corpus.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")
    with pytest.raises(IndexFormatError, match="differs from the finished index in shard 0"):
        build_index(corpus, tmp_path / "ix", model=e5_tiny)
    corpus.write_text("\n".join(sorted(lines)[:8]) + "\n")
    write_corpus(corpus, 16)
    with pytest.raises(IndexFormatError, match="fewer than|ends inside"):
        build_index(corpus, tmp_path / "ix", model=e5_tiny)


def test_empty_inputs(tmp_path, e5_tiny):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(InputFormatError, match="no documents"):
        build_index(tmp_path / "empty.jsonl", tmp_path / "ix", model=e5_tiny)
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "a", "text": "x"}\n{"_id": "b", "title": "", "text": ""}\n{"_id": "c", "text": "y"}\n')
    with pytest.raises(InputFormatError, match="id 'b'.*empty text"):
        build_index(path, tmp_path / "ix2", model=e5_tiny)
    report = build_index(path, tmp_path / "ix3", model=e5_tiny, skip_empty=True)
    assert report.skipped_empty == ["b"] and DenseIndex.open(tmp_path / "ix3").ids_of([0, 1]) == ["a", "c"]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"dtype": "float64"}, "dtype"),
        ({"quantize": ["pq"]}, "quantization"),
        ({"shard_size": 0}, "shard_size"),
        ({"quantize": ["int8"], "normalize": False}, "unit vectors"),
    ],
)
def test_bad_settings(tmp_path, e5_tiny, kwargs, match):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 3)
    with pytest.raises(ValueError, match=match):
        build_index(corpus, tmp_path / "ix", model=e5_tiny, **kwargs)


def test_float16_and_quantized_copies(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 30)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, dtype="float16", quantize=["int8", "binary"], shard_size=16)
    ix = DenseIndex.open(tmp_path / "ix")
    arr = np.load(tmp_path / "ix" / "shards" / "00000.f16.npy")
    assert arr.dtype == np.float16 and arr.shape == (16, e5_tiny.dim)
    assert np.load(tmp_path / "ix" / "shards" / "00000.binary.npy").shape == (16, (e5_tiny.dim + 7) // 8)
    full = e5_tiny.encode_passages([{"title": f"title {i % 5}", "text": doc_text(i)} for i in range(30)])
    np.testing.assert_allclose(np.concatenate(list(ix.blocks())), full, atol=2e-3)
    np.testing.assert_allclose(np.concatenate(list(ix.blocks("int8"))), full, atol=1 / 127)
    signs = np.concatenate(list(ix.blocks("binary")))
    assert np.array_equal(signs > 0, full > 0)
    q = e5_tiny.encode_queries(["cell"])
    for kind in ("float", "int8", "binary"):
        scores, rows = ix.search_vectors(q, 3, vectors=kind)
        assert rows.shape == (1, 3) and np.all(np.diff(scores[0]) <= 0)
    with pytest.raises(ValueError, match="vectors 'pq'"):
        next(ix.blocks("pq"))
    with pytest.raises(ValueError, match="do not match the index dim"):
        ix.search_vectors(np.ones((1, 3)), 3)
    with pytest.raises(ValueError, match="k must be a positive int"):
        ix.search_vectors(q, 0)


def test_missing_quantized_copy(tmp_path, e5_tiny):
    build_index(write_corpus(tmp_path / "c.jsonl", 5), tmp_path / "ix", model=e5_tiny)
    with pytest.raises(IndexFormatError, match="no int8 copy"):
        DenseIndex.open(tmp_path / "ix").search_vectors(np.ones((1, e5_tiny.dim)), 2, vectors="int8")


def test_bad_record_mid_corpus_keeps_finished_shards_and_resumes(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 30)
    lines = corpus.read_text().splitlines()
    corpus.write_text("\n".join(lines[:25] + ["{broken"] + lines[25:]) + "\n")
    with pytest.raises(InputFormatError, match="corpus.jsonl:26: malformed JSON line"):
        build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=8)  # raised in the reader thread
    finished = sorted(p.name for p in (tmp_path / "ix" / "shards").glob("?????.json"))
    assert finished[:2] == ["00000.json", "00001.json"] and "00003.json" not in finished
    corpus.write_text("\n".join(lines) + "\n")
    report = build_index(corpus, tmp_path / "ix", model=e5_tiny)
    assert report.complete and report.skipped_shards >= 2 and report.encoded_docs <= 14


def test_rank_device(monkeypatch):
    from e5kit.index.build import rank_device

    monkeypatch.delenv("LOCAL_RANK", raising=False)
    assert rank_device() is None
    monkeypatch.setenv("LOCAL_RANK", "1")
    import torch

    assert rank_device() == ("cuda:1" if torch.cuda.is_available() else None)


# --- issue 13: validate before work, never write over what is not ours, no dead ends, no orphans ---


@pytest.fixture()
def no_model(monkeypatch):
    """Loading a model fails the test: the error must come before it."""
    import e5kit.index.build as build_mod

    monkeypatch.setattr(build_mod, "_load_model", lambda *a, **k: pytest.fail("the model was loaded first"))


def test_i13_16_shard_removed_after_check_is_rebuilt(tmp_path, e5_tiny):
    from e5kit.index.check import check_index

    corpus = write_corpus(tmp_path / "corpus.jsonl", 20)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=8, quantize=["int8"])
    before = shard_bytes(tmp_path / "ix")
    vec = tmp_path / "ix" / "shards" / "00001.f32.npy"
    data = bytearray(vec.read_bytes())
    data[-1] ^= 0xFF
    vec.write_bytes(bytes(data))
    with pytest.raises(IndexFormatError, match=r"shards/00001\.\*.*e5kit index build") as info:
        check_index(DenseIndex.open(tmp_path / "ix"), sample=3)
    assert "delete" in str(info.value)
    for p in (tmp_path / "ix" / "shards").glob("00001.*"):  # what the message says to do
        p.unlink()
    with pytest.raises(IndexFormatError, match="shard 1 .*missing.*e5kit index build"):
        DenseIndex.open(tmp_path / "ix")
    report = build_index(corpus, tmp_path / "ix", model=e5_tiny)
    assert (report.encoded_shards, report.skipped_shards, report.complete) == (1, 2, True)
    assert shard_bytes(tmp_path / "ix") == before
    assert check_index(DenseIndex.open(tmp_path / "ix"), sample=3)[0].recall == 1.0
    merge_index(tmp_path / "ix")


def test_i13_16_removed_shard_of_appended_index_is_rebuilt(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 20)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=8)  # 8, 8, 4
    write_corpus(tmp_path / "more.jsonl", 10, start=20)
    build_index([corpus, tmp_path / "more.jsonl"], tmp_path / "ix", model=e5_tiny)  # + 8, 2
    before = shard_bytes(tmp_path / "ix")
    for j in (2, 3):  # two neighbours: sizes 4 and 8 cannot be guessed from the shard size
        for p in (tmp_path / "ix" / "shards").glob(f"0000{j}.*"):
            p.unlink()
    report = build_index([corpus, tmp_path / "more.jsonl"], tmp_path / "ix", model=e5_tiny)
    assert (report.encoded_shards, report.complete) == (2, True)
    assert shard_bytes(tmp_path / "ix") == before


def test_i13_16_removed_shard_with_edited_documents_is_refused(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 20)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=8)
    for p in (tmp_path / "ix" / "shards").glob("00001.*"):
        p.unlink()
    lines = corpus.read_text().splitlines()
    lines[9] = lines[9].replace("title", "changed")
    corpus.write_text("\n".join(lines) + "\n")
    with pytest.raises(IndexFormatError, match="differs from the finished index in shard 1"):
        build_index(corpus, tmp_path / "ix", model=e5_tiny)


def test_i13_18_leftover_slice_of_another_split_is_named_before_encoding(tmp_path, e5_tiny, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 30)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=5, shard="2/4")  # the mistake
    real = e5_tiny.iter_encode
    monkeypatch.setattr(e5_tiny, "iter_encode", lambda *a, **k: pytest.fail("encoded before the check"))
    with pytest.raises(IndexFormatError, match=r"delete .*slices/2-of-4\.json") as info:
        build_index(corpus, tmp_path / "ix", model=e5_tiny, shard="0/3")
    assert "2/4" in str(info.value) and "0/3" in str(info.value)
    monkeypatch.setattr(e5_tiny, "iter_encode", real)
    (tmp_path / "ix" / "slices" / "2-of-4.json").unlink()  # as the message says
    for i in range(3):
        report = build_index(corpus, tmp_path / "ix", model=e5_tiny, shard=f"{i}/3")
    assert report.complete and len(DenseIndex.open(tmp_path / "ix")) == 30


def test_i13_18_merge_names_the_slice_report_to_delete(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 12)
    build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=4, shard="1/2")
    report = json.loads((tmp_path / "ix" / "slices" / "1-of-2.json").read_text())
    report["slice"] = [0, 3]  # a report of another split, as older versions left behind
    (tmp_path / "ix" / "slices" / "0-of-3.json").write_text(json.dumps(report))
    with pytest.raises(IndexFormatError, match=r"(?i)delete .*slices/.-of-.\.json"):
        merge_index(tmp_path / "ix")


def test_i13_19_max_length_mismatch_names_only_the_difference_and_the_flag(tmp_path, e5_tiny, tiny_e5):
    from e5kit import E5

    corpus = write_corpus(tmp_path / "corpus.jsonl", 6)
    build_index(corpus, tmp_path / "ix", model=e5_tiny)
    short = E5(str(tiny_e5), max_seq_length=16)
    with pytest.raises(IndexFormatError) as info:
        DenseIndex.open(tmp_path / "ix").check_model(short)
    msg = str(info.value)
    assert "--max-length 64" in msg and "max_seq_length=64" in msg and "prefix" not in msg
    with pytest.raises(IndexFormatError) as info:
        build_index(corpus, tmp_path / "ix", model=short)
    msg = str(info.value)
    assert "--max-length" in msg and "64" in msg and "16" in msg and "prompts" not in msg


def test_i13_20_unwritable_output_refused_before_model_load(tmp_path, no_model):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 4)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(IndexFormatError, match="afile.*not a folder"):
        build_index(corpus, tmp_path / "afile" / "ix", model="whatever")
    with pytest.raises(IndexFormatError, match="afile.*not a folder"):
        build_index(corpus, tmp_path / "afile", model="whatever")
    if os.geteuid() != 0:  # root writes anywhere
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        with pytest.raises(IndexFormatError, match="not writable"):
            build_index(corpus, tmp_path / "ro" / "ix", model="whatever")


def test_i13_20_foreign_nonempty_folder_is_not_written_into(tmp_path, no_model):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 4)
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "notes.txt").write_text("mine")
    with pytest.raises(IndexFormatError, match="not empty.*no e5kit index"):
        build_index(corpus, tmp_path / "docs", model="whatever")
    assert sorted(p.name for p in (tmp_path / "docs").iterdir()) == ["notes.txt"]


@pytest.mark.parametrize("kwargs, match", [({"shard_size": 0}, "shard_size"), ({"dtype": "float64"}, "dtype"),
                                           ({"quantize": ["pq"]}, "quantization"), ({"shard": "3/2"}, "shard spec")])
def test_i13_build_settings_checked_before_model_load(tmp_path, no_model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        build_index(write_corpus(tmp_path / "c.jsonl", 3), tmp_path / "ix", model="whatever", **kwargs)


def test_i13_31_failed_build_leaves_no_half_made_folder(tmp_path, e5_tiny):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "a", "text": ""}\n{"_id": "b", "text": "y"}\n')
    with pytest.raises(InputFormatError, match="empty text"):
        build_index(path, tmp_path / "new" / "deeper" / "ix", model=e5_tiny)
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputFormatError):
        build_index(path, tmp_path / "empty", model=e5_tiny)
    assert list((tmp_path / "empty").iterdir()) == []  # the user's folder stays, empty


def test_i13_28_index_files_follow_the_umask(tmp_path, e5_tiny):
    from e5kit.index.ann import build_ann
    from e5kit.index.hybrid import build_bm25

    old = os.umask(0o002)
    try:
        corpus = write_corpus(tmp_path / "corpus.jsonl", 300)
        build_index(corpus, tmp_path / "ix", model=e5_tiny, shard_size=100, quantize=["int8"])
        dense = DenseIndex.open(tmp_path / "ix")
        build_ann(dense, "hnsw", M=8, ef_construction=16)
        build_bm25(dense, show_progress=False)
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path).as_posix(): p.stat().st_mode & 0o777 for p in (tmp_path / "ix").rglob("*")}
    assert {m for n, m in modes.items() if (tmp_path / n).is_dir()} == {0o775}
    assert {m for n, m in modes.items() if (tmp_path / n).is_file()} == {0o664}, modes
