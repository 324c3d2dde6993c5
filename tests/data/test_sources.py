"""Every builder on a fixture in its source's real dump format."""

from __future__ import annotations

import pytest

from e5kit.data.sources import SOURCES, get_source
from e5kit.errors import InputFormatError
from e5kit.io.bad_records import BadRecords
from tests.data import dumps


def pairs_of(name, path, **options):
    return list(get_source(name).iter_file(path, **options))


def test_registry_names_every_module():
    for name in SOURCES:
        mod = get_source(name)
        assert mod.NAME == name
        assert hasattr(mod, "iter_file") or hasattr(mod, "iter_inputs")
    with pytest.raises(ValueError, match="unknown pair source 'nope'"):
        get_source("nope")


def test_stackexchange_accepted_or_best_answer(tmp_path):
    got = pairs_of("stackexchange", dumps.stackexchange_posts(tmp_path))
    by_q = {p.meta["question_id"]: p for p in got}
    assert set(by_q) == {1, 4}  # question 7's accepted answer has score 0 and no other answer
    assert by_q[1].query.startswith("How do I reverse a list in Python? I have a list")
    assert "reversed()" in by_q[1].passage and "list(reversed(x))" in by_q[1].passage  # accepted, not best
    assert "<" not in by_q[1].passage
    assert by_q[4].passage == "Rayleigh scattering of sunlight."
    strict = pairs_of("stackexchange", tmp_path / "Posts.xml", min_score=8)  # accepted answer 3 has score 4 < 8
    assert [(p.meta["question_id"], p.passage) for p in strict] == [(1, "Use slicing with a step.")]


def test_stackexchange_malformed(tmp_path):
    bad = tmp_path / "Posts.xml"
    bad.write_text("<posts><row Id='1' </posts>")
    with pytest.raises(InputFormatError, match="Posts.xml"):
        pairs_of("stackexchange", bad)


def test_wikipedia_sections_and_skips(tmp_path):
    got = pairs_of("wikipedia", dumps.wikipedia_xml(tmp_path), min_section_chars=60)
    assert [p.query for p in got] == ["Aspirin", "Aspirin Medical uses"]
    lead, uses = got[0].passage, got[1].passage
    assert lead.startswith("Aspirin is a medication used to reduce pain")
    assert "caption" not in lead and "A source" not in lead and "[[" not in lead and "'''" not in lead
    assert "{{" not in uses and "pericarditis" in uses
    assert all(p.meta["title"] == "Aspirin" for p in got)


def test_wikipedia_not_xml(tmp_path):
    bad = tmp_path / "x.xml"
    bad.write_text("<mediawiki><page><title>x</title>")
    with pytest.raises(InputFormatError):
        pairs_of("wikipedia", bad)


def test_reddit_best_top_level_comment(tmp_path):
    bad = BadRecords(0.5)
    got = list(get_source("reddit").iter_inputs(dumps.reddit_jsonl(tmp_path), bad=bad))
    assert (bad.seen, bad.bad) == (11, 1)
    assert [(p.query, p.passage) for p in got] == [
        ("What book changed your life? Looking for ideas.", "Best comment ever."),
        ("Deleted post", "Top comment on a2"),
    ]  # a3: one comment has score 0, the other is over 4,096 chars; c7 has no post; replies never count
    assert got[0].meta["score"] == 40 and got[0].meta["subreddit"] == "books"
    more = list(get_source("reddit").iter_inputs(dumps.reddit_jsonl(tmp_path), max_comment_chars=6000,
                                                 bad=BadRecords(0.5)))
    assert any(p.passage.startswith("xxx") for p in more)


def test_papers_arxiv_and_s2orc(tmp_path):
    bad = BadRecords(0.5)
    got = pairs_of("papers", dumps.papers_jsonl(tmp_path), bad=bad)
    assert (bad.seen, bad.bad) == (5, 1)  # the "not json" line is counted, the empty abstract is no pair
    assert [p.query for p in got] == ["Calculation of prompt diphoton production cross sections", "An S2 paper",
                                      "S2ORC nested"]
    assert got[0].passage == "A fully differential calculation in perturbative quantum chromodynamics is presented."
    assert got[2].passage == "Nested abstract text."
    with pytest.raises(InputFormatError, match=":5: malformed JSON"):  # without a policy: stop at the first
        pairs_of("papers", tmp_path / "arxiv-metadata-oai-snapshot.json")


def test_web_warc_removes_boilerplate(tmp_path):
    got = pairs_of("web", dumps.warc_file(tmp_path))
    assert len(got) == 1  # the image response is skipped
    assert got[0].query == "Farm life in autumn"
    assert "quick brown fox" in got[0].passage
    assert "cookie policy" not in got[0].passage and "Home | About" not in got[0].passage
    assert got[0].meta["url"] == "http://example.com/farm"


def test_web_wet_first_line_title(tmp_path):
    got = pairs_of("web", dumps.wet_file(tmp_path))
    assert [p.query for p in got] == ["Harvest festival guide"]  # the other record's first line is too long
    assert got[0].passage.startswith("The quick brown fox")


def test_debian_descriptions(tmp_path):
    got = pairs_of("debian", dumps.debian_translation(tmp_path))
    assert [(p.query, p.meta["package"]) for p in got] == [
        ("Real-time strategy game of ancient warfare", "0ad"), ("example package based on GNU hello", "hello")]
    assert got[0].passage == "0 A.D. is a free, open-source real-time strategy game.\n\nIt runs on many systems."


def test_wordnet_lemma_gloss(tmp_path):
    got = pairs_of("wordnet", dumps.wordnet_data(tmp_path))
    assert [p.query for p in got] == ["dog", "able", "big"]
    assert got[0].passage == 'a member of the genus Canis; "the dog barked all night"'
    assert got[0].meta == {"lemmas": ["dog", "domestic dog", "Canis familiaris"], "pos": "noun"}
    bad = tmp_path / "data.verb"
    bad.write_text("00001 00 v zz | gloss\n00002 00 v 01 walk 0 000 | go on foot\n")
    with pytest.raises(InputFormatError, match="data.verb:1"):
        pairs_of("wordnet", bad)
    policy = BadRecords(0.5)
    assert [p.query for p in pairs_of("wordnet", bad, bad=policy)] == ["walk"]
    assert (policy.seen, policy.bad) == (2, 1)


def test_pydocs_sections(tmp_path):
    page = dumps.pydocs_html(tmp_path)
    got = pairs_of("pydocs", page)
    assert [p.query for p in got] == ["json — JSON encoder and decoder",
                                      "json — JSON encoder and decoder: Basic Usage",
                                      "json — JSON encoder and decoder: Old style section"]
    assert got[0].passage == ("JSON is a lightweight data interchange format inspired by JavaScript object "
                              "literal syntax.")
    assert "json.dump(obj, fp)" in got[1].passage and "¶" not in got[1].passage
    files = get_source("pydocs").html_files(tmp_path)
    assert files == [page]  # genindex skipped


def test_manpages_man_and_mdoc(tmp_path):
    files = dumps.man_pages(tmp_path)
    mod = get_source("manpages")
    ls_page, cat_page, redirect_page, de_page = files
    assert mod.page_files(tmp_path) == [de_page, cat_page, ls_page, redirect_page]
    ls, cat, redirect, de = (list(mod.iter_file(f)) for f in files)
    assert ls[0].query == "ls - list directory contents"
    assert ls[0].passage.startswith("List information about the FILEs")
    assert "-a, --all" in ls[0].passage and "\\f" not in ls[0].passage
    assert cat[0].query == "cat concatenate and print files"
    assert "utility reads files sequentially" in cat[0].passage and "more(1)" in cat[0].passage
    assert redirect == []
    assert de[0].meta["lang"] == "de" and de[0].passage == "Auflisten von Informationen über die Dateien."
    assert ls[0].meta["lang"] == "en"


@pytest.mark.parametrize("name", ["stackexchange", "wikipedia", "papers", "web", "debian", "wordnet", "manpages"])
def test_missing_input_file(tmp_path, name):
    with pytest.raises((FileNotFoundError, OSError)):
        pairs_of(name, tmp_path / "missing.xml")


@pytest.mark.parametrize("name, filename, content", [
    ("papers", "a.jsonl", ""), ("debian", "Translation-en", ""), ("wordnet", "data.adv", ""),
    ("manpages", "x.1", ""), ("pydocs", "x.html", ""), ("reddit", "RC.jsonl", "\n\n"),
])
def test_empty_or_wrong_typed_inputs_give_no_pairs(tmp_path, name, filename, content):
    path = tmp_path / filename
    path.write_text(content)
    mod = get_source(name)
    got = list(mod.iter_inputs([path])) if name == "reddit" else list(mod.iter_file(path))
    assert got == []


@pytest.mark.parametrize("name", ["stackexchange", "wikipedia"])
def test_empty_xml_is_a_format_error(tmp_path, name):
    path = tmp_path / "empty.xml"
    path.write_text("")
    with pytest.raises(InputFormatError):
        pairs_of(name, path)


def test_huge_passages_are_clipped_at_paragraphs(tmp_path):
    man1 = tmp_path / "man1"
    man1.mkdir()
    body = "\n.PP\n".join(f"Paragraph {i} " + "word " * 100 for i in range(50))
    (man1 / "big.1").write_text(f".TH BIG 1\n.SH NAME\nbig \\- a big page\n.SH DESCRIPTION\n{body}\n")
    (p,) = pairs_of("manpages", man1 / "big.1", max_passage_chars=1500)
    assert len(p.passage) <= 1500 and p.passage.endswith("word") and p.passage.count("Paragraph") == 2


@pytest.mark.parametrize("name, content, reason", [
    ("papers", '[1, 2]\n"str"\n', "expected a JSON object"),
    ("papers", '{"title": 5, "abstract": "x"}\n', "'title' must be a string"),
    ("papers", '{"title": "t", "abstract": ["x"]}\n', "'abstract' must be a string"),
    ("reddit", '{"id": "a", "title": 7}\n', "'title' must be a string"),
    ("reddit", '{"id": "c", "link_id": "t3_a", "parent_id": "t3_a", "body": "b", "score": "many"}\n',
     "'score' must be an integer"),
])
def test_wrong_typed_records_are_bad_records_not_silent_drops(tmp_path, name, content, reason):
    """Issue 13 item 12: valid JSON of the wrong type was dropped without a count; now the policy sees it."""
    path = tmp_path / "x.jsonl"
    path.write_text(content)
    mod = get_source(name)
    read = (lambda **kw: list(mod.iter_inputs([path], **kw))) if name == "reddit" else \
        (lambda **kw: list(mod.iter_file(path, **kw)))
    with pytest.raises(InputFormatError, match=reason):
        read()
    policy = BadRecords(1.0)
    assert read(bad=policy) == [] and policy.bad == policy.seen == content.count("\n")
