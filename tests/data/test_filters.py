"""Rule filters one by one, their report, and decontamination against evaluation files."""

from __future__ import annotations

import gzip
import json

import pytest

from e5kit.data import Pair, PairWriter, iter_pairs
from e5kit.data.decontaminate import Decontaminator, default_eval_dirs
from e5kit.data.filters import ExactDedup, LanguageFilter, LengthFilter, NearDedup, RuleConfig, filter_rules
from tests.data.dumps import ENGLISH, GERMAN


def P(q, p, s="t"):
    return Pair(q, p, s)


def test_length_filter_reasons():
    f = LengthFilter(RuleConfig(min_query_chars=3, max_query_chars=50, min_passage_chars=10, max_passage_chars=100,
                                min_passage_tokens=3, max_query_tokens=5))
    assert f(P("ok?", "a passage of words")) is None
    assert f(P("no", "a passage of words")) == "query_short_chars"
    assert f(P("x" * 51, "a passage of words")) == "query_long_chars"
    assert f(P("fine", "short")) == "passage_short_chars"
    assert f(P("fine", "y" * 101)) == "passage_long_chars"
    assert f(P("fine", "two-words..")) == "passage_short_tokens"
    assert f(P("one two three four five six", "a passage of words")) == "query_long_tokens"


def test_length_filter_counts_model_tokens(tiny_bert):
    f = LengthFilter(RuleConfig(tokenizer=str(tiny_bert), max_passage_tokens=3, min_passage_tokens=0,
                                min_passage_chars=0))
    assert f(P("query", "the cell")) is None
    assert f(P("query", "the cell water fire")) == "passage_long_tokens"


@pytest.mark.parametrize("backend", ["langid", "lingua"])
def test_language_filter_keeps_english_only(backend):
    pytest.importorskip(backend)
    f = LanguageFilter(backend, 0.5)
    assert f(P("Farm life", ENGLISH)) is None
    assert f(P("Bauernhof", GERMAN)) == "not_english"


def test_language_backend_must_be_known():
    with pytest.raises(ValueError, match="langid"):
        LanguageFilter("cld9")
    with pytest.raises(ValueError, match="lang_backend"):
        RuleConfig(lang_backend="cld9")


def test_exact_dedup_normalizes_case_and_spacing():
    f = ExactDedup()
    assert f(P("What is X?", "X is a letter.")) is None
    assert f(P("what is  x", "x is a LETTER")) == "exact_duplicate"
    assert f(P("what is x", "y is a letter")) is None


def test_near_dedup_catches_small_edits_only():
    f = NearDedup(threshold=0.8, num_perm=128)
    base = " ".join(f"word{i}" for i in range(200))
    assert f(P("a", base)) is None
    assert f(P("b", base.replace("word100", "changed"))) == "near_duplicate"
    assert f(P("c", " ".join(f"other{i}" for i in range(200)))) is None


def eval_dir(tmp_path):
    root = tmp_path / "evals"
    (root / "beir" / "qrels").mkdir(parents=True)
    with gzip.open(root / "beir" / "corpus.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"_id": "d1", "title": "Aspirin", "text": "Aspirin lowers fever in most adults."}) + "\n")
    with gzip.open(root / "beir" / "queries.jsonl.gz", "wt") as fh:
        fh.write(json.dumps({"_id": "q1", "text": "Does aspirin lower fever?"}) + "\n")
    (root / "sts.test.jsonl").write_text(json.dumps({"sentence1": "A man plays a guitar.", "sentence2": "ok",
                                                     "score": 4.0}) + "\n")
    return root


def test_decontaminator_matches_normalized_eval_texts(tmp_path):
    d = Decontaminator([eval_dir(tmp_path)])
    assert d(P("does ASPIRIN lower fever", "anything at all")) == "eval_query_match"
    assert d(P("q", "A  man plays a guitar")) == "eval_passage_match"
    assert d(P("q", "Aspirin. Aspirin lowers fever in most adults!")) == "eval_passage_match"  # title + text
    assert d(P("ok", "ok")) is None  # below min_chars: too short to call contamination
    assert d(P("Does aspirin cure colds?", "A woman plays a guitar.")) is None
    assert d.summary()["eval_texts"] == 4  # "ok" and the bare title "Aspirin" are too short


def test_decontaminator_errors(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError):
        Decontaminator([tmp_path / "missing"])
    with pytest.raises(ValueError, match="min_chars"):
        Decontaminator([tmp_path], min_chars=0)
    monkeypatch.setenv("E5KIT_EVAL_DATA", str(tmp_path))
    assert default_eval_dirs() == [tmp_path]


def test_decontaminator_reads_the_shared_evaluation_sets(shared_data):
    d = Decontaminator([shared_data])
    assert len(d.files) >= 10 and len(d.keys) > 50_000
    first = json.loads(gzip.open(shared_data / "sts" / "stsbenchmark.test.jsonl.gz", "rt").readline())
    query = json.loads(gzip.open(shared_data / "scifact" / "queries.jsonl.gz", "rt").readline())["text"]
    assert d(P(first["sentence1"].upper(), "unrelated passage text")) == "eval_query_match"
    assert d(P("unrelated query", query)) == "eval_passage_match"


def test_filter_rules_report_counts_every_reason(tmp_path):
    pairs = [P("Farm life", ENGLISH, "web"), P("farm LIFE", ENGLISH + " ", "web"),  # exact dup after normalizing
             P("Farm life 2", ENGLISH.replace("autumn", "spring"), "web"),  # near dup
             P("Bauernhof", GERMAN, "man"), P("x", ENGLISH + " once more", "man"),  # German; short query
             P("Does aspirin lower fever?", "Yes, it does in most adults most of the time.", "qa")]
    with PairWriter(tmp_path / "raw") as w:
        for p in pairs:
            w.write(p)
    cfg = RuleConfig(eval_dirs=[str(eval_dir(tmp_path))], default_eval_sets=False, near_threshold=0.7, num_perm=128)
    rep = filter_rules(tmp_path / "raw", tmp_path / "clean", cfg, show_progress=False)
    steps = {s["filter"]: s for s in rep["steps"]}
    assert rep["input"] == 6 and rep["kept"] == 1
    assert steps["length"]["reasons"] == {"query_short_chars": 1}
    assert steps["decontaminate"]["reasons"] == {"eval_query_match": 1}
    assert steps["language"]["reasons"] == {"not_english": 1}
    assert steps["exact_dedup"]["dropped"] == 1 and steps["near_dedup"]["dropped"] == 1
    assert [s["out"] for s in rep["steps"]] == [5, 4, 3, 2, 1]
    assert rep["by_source"]["web"] == {"input": 3, "kept": 1, "exact_duplicate": 1, "near_duplicate": 1}
    assert [p.query for p in iter_pairs(tmp_path / "clean")] == ["Farm life"]
    saved = json.loads((tmp_path / "clean" / "report-rules.json").read_text())
    assert saved["kept"] == 1 and saved["decontamination"]["eval_texts"] == 4
    assert rep["examples"]["not_english"][0]["query"] == "Bauernhof"
    assert "eval_query_match" not in rep["examples"]


def test_filter_rules_steps_can_be_switched_off(tmp_path):
    with PairWriter(tmp_path / "raw") as w:
        for _ in range(3):
            w.write(P("Bauernhof", GERMAN))
    cfg = RuleConfig(english=False, exact_dedup=False, near_dedup=False, decontaminate=False)
    rep = filter_rules(tmp_path / "raw", tmp_path / "out", cfg, show_progress=False)
    assert rep["kept"] == 3 and [s["filter"] for s in rep["steps"]] == ["length"]
    with pytest.raises(ValueError, match="must differ"):
        filter_rules(tmp_path / "raw", tmp_path / "raw", cfg)
    with pytest.raises(ValueError, match="near_threshold"):
        RuleConfig(near_threshold=0)


def test_filter_rules_mixes_input_folders_by_size(tmp_path):
    """Two sources in, one stream out: mixed 3:1 by size throughout, not one folder after the other."""
    for name, n in (("big", 300), ("small", 100)):
        with PairWriter(tmp_path / name) as w:
            for i in range(n):
                w.write(P(f"{name} query number {i}", f"{name} passage text number {i} with some words", name))
    cfg = RuleConfig(english=False, exact_dedup=False, near_dedup=False, decontaminate=False)
    rep = filter_rules([tmp_path / "big", tmp_path / "small"], tmp_path / "out", cfg, show_progress=False)
    assert rep["kept"] == 400
    sources = [p.source for p in iter_pairs(tmp_path / "out")]
    assert sources.count("big") == 300 and sources.count("small") == 100
    for start in range(0, 400, 40):  # every window of 40 holds both, near 3:1
        window = sources[start:start + 40]
        assert 26 <= window.count("big") <= 34
    queries = [p.query for p in iter_pairs(tmp_path / "out") if p.source == "small"]
    assert queries == [f"small query number {i}" for i in range(100)]  # each source keeps its own order


def _one_text_eval_set(folder, text):
    folder.mkdir()
    (folder / "t.jsonl").write_text(json.dumps({"text": text}) + "\n")
    return folder


def test_eval_dir_adds_to_the_default_evaluation_sets(tmp_path, monkeypatch):
    """Issue 13 item 15: --eval-dir replaced the default sets, silently dropping their decontamination."""
    from e5kit.cli import main

    monkeypatch.setenv("E5KIT_EVAL_DATA", str(_one_text_eval_set(tmp_path / "default", "the default set's text")))
    mine = _one_text_eval_set(tmp_path / "mine", "my own evaluation text")
    with PairWriter(tmp_path / "raw") as w:
        for q in ("the default set's text", "my own evaluation text", "an ordinary query"):
            w.write(P(q, "a passage long enough to be kept by the length filter"))
    off = ["--no-english", "--no-near-dedup", "--no-progress"]
    assert main(["pairs", "clean", str(tmp_path / "raw"), "-o", str(tmp_path / "c"), "--eval-dir", str(mine),
                 *off]) == 0
    assert [p.query for p in iter_pairs(tmp_path / "c")] == ["an ordinary query"]
    assert main(["pairs", "clean", str(tmp_path / "raw"), "-o", str(tmp_path / "only"), "--eval-dir", str(mine),
                 "--no-default-eval-sets", *off]) == 0
    assert [p.query for p in iter_pairs(tmp_path / "only")] == ["the default set's text", "an ordinary query"]
    with pytest.raises(Exception, match="no evaluation data"):
        filter_rules(tmp_path / "raw", tmp_path / "none", RuleConfig(default_eval_sets=False), show_progress=False)


def test_clean_counts_bad_records_instead_of_stopping_at_the_first(tmp_path):
    """Issue 13 item 12: `pairs clean` stopped at the first bad record; now the one policy applies."""
    from e5kit.errors import InputFormatError

    raw = tmp_path / "raw"
    raw.mkdir()
    lines = [json.dumps(P(f"query number {i}", f"passage number {i} with enough words").to_dict())
             for i in range(198)]
    lines[10:10] = ["{oops", json.dumps({"query": 3, "passage": "p", "source": "s"})]
    (raw / "pairs-00000.jsonl").write_text("\n".join(lines) + "\n")
    cfg = RuleConfig(english=False, exact_dedup=False, near_dedup=False, decontaminate=False)
    rep = filter_rules(raw, tmp_path / "out", cfg, show_progress=False)
    assert rep["kept"] == 198 and (rep["bad_records"]["seen"], rep["bad_records"]["bad"]) == (200, 2)
    logged = (tmp_path / "out" / "pairs.bad_records.log").read_text().splitlines()
    assert [line.split("\t")[0] for line in logged] == [f"{raw / 'pairs-00000.jsonl'}:{n}" for n in (11, 12)]
    with pytest.raises(InputFormatError, match=r"2 of 200 pair records were malformed.*max_bad_fraction=0.005"):
        filter_rules(raw, tmp_path / "out2", cfg, max_bad_fraction=0.005, show_progress=False)
    assert not (tmp_path / "out2" / "report-rules.json").exists()
