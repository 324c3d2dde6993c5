"""build_pairs: sources into shards, parts that split the work, resume after an interruption."""

from __future__ import annotations

import pytest

from e5kit.data import iter_pairs
from e5kit.data.build import build_pairs, parse_part
from e5kit.data.shards import read_manifest
from e5kit.data.sources import get_source
from tests.data import dumps


def wordnet_files(tmp_path, n=4, lines=3):
    """n WordNet data files of `lines` distinct synsets each."""
    files = []
    for k in range(n):
        folder = tmp_path / f"wn{k}"
        folder.mkdir()
        path = folder / "data.noun"
        path.write_text("".join(f"{k:04d}{j:04d} 05 n 01 word{k}_{j} 0 000 | gloss number {j} of file {k} with "
                                f"enough words to look like a real definition {k * 7919 + j}\n"
                                for j in range(lines)))
        files.append(path)
    return files


def test_build_and_rebuild_is_idempotent(tmp_path):
    files = wordnet_files(tmp_path)
    m = build_pairs("wordnet", files, tmp_path / "out", show_progress=False)
    assert m["done"] and m["pairs"] == 12 and len(m["inputs"]) == 4
    again = build_pairs("wordnet", files, tmp_path / "out", show_progress=False)
    assert again["pairs"] == 12 and len(list(iter_pairs(tmp_path / "out"))) == 12


@pytest.mark.parametrize("n_files, parts", [(4, 2), (1, 3)])
def test_parts_are_disjoint_and_complete(tmp_path, n_files, parts):
    files = wordnet_files(tmp_path, n_files)
    whole = {p.id for p in iter_pairs(build_pairs("wordnet", files, tmp_path / "all", show_progress=False) and
                                      tmp_path / "all")}
    ids = []
    for i in range(parts):
        build_pairs("wordnet", files, tmp_path / "parts", part=f"{i}/{parts}", show_progress=False)
    ids = [p.id for p in iter_pairs(tmp_path / "parts")]
    assert len(ids) == len(set(ids)) and set(ids) == whole
    assert read_manifest(tmp_path / "parts", f"pairs-part000of{parts:03d}")["done"]


def test_resume_after_crash_skips_finished_work(tmp_path, monkeypatch):
    files = wordnet_files(tmp_path, 6, lines=300)
    mod = get_source("wordnet")
    real = mod.iter_file
    calls = []

    def crashing(path, **kw):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        yield from real(path, **kw)

    monkeypatch.setattr(mod, "iter_file", crashing)
    with pytest.raises(KeyboardInterrupt):
        build_pairs("wordnet", files, tmp_path / "out", shard_bytes=1024, show_progress=False)
    m = read_manifest(tmp_path / "out")
    assert not m["done"]
    calls.clear()
    monkeypatch.setattr(mod, "iter_file", lambda path, **kw: (calls.append(path), (yield from real(path, **kw)))[1])
    m = build_pairs("wordnet", files, tmp_path / "out", shard_bytes=1024, show_progress=False)
    assert m["done"] and m["pairs"] == 1800
    assert len(calls) < 6  # inputs whose pairs sat in finished shards were not read again
    ids = [p.id for p in iter_pairs(tmp_path / "out")]
    assert len(ids) == len(set(ids)) == 1800


def test_limit_and_bad_arguments(tmp_path):
    files = wordnet_files(tmp_path, 2)
    assert build_pairs("wordnet", files, tmp_path / "o", limit=4, show_progress=False)["pairs"] == 4
    with pytest.raises(ValueError, match="limit"):
        build_pairs("wordnet", files, tmp_path / "o2", limit=0)
    with pytest.raises(ValueError, match="unknown pair source"):
        build_pairs("gopher", files, tmp_path / "o3")
    with pytest.raises(FileNotFoundError):
        build_pairs("wordnet", [tmp_path / "missing"], tmp_path / "o4")
    with pytest.raises(ValueError, match="needs input files"):
        build_pairs("papers", [], tmp_path / "o5")
    for bad in ("2/2", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match="i/n"):
            parse_part(bad)
    assert parse_part("1/4") == (1, 4) and parse_part(None) == (0, 1)


def test_multi_file_source_reddit(tmp_path):
    from e5kit.errors import InputFormatError

    with pytest.raises(InputFormatError, match="1 of 11 input records"):  # 9% broken lines: above the default 1%
        build_pairs("reddit", dumps.reddit_jsonl(tmp_path), tmp_path / "out", show_progress=False)
    m = build_pairs("reddit", dumps.reddit_jsonl(tmp_path), tmp_path / "out", max_bad_fraction=0.1,
                    show_progress=False)
    assert m["pairs"] == 2 and {p.source for p in iter_pairs(tmp_path / "out")} == {"reddit"}
    assert m["bad_records"]["bad"] == 1


def test_builder_options_are_passed(tmp_path):
    posts = dumps.stackexchange_posts(tmp_path)
    m = build_pairs("stackexchange", [posts], tmp_path / "o", options={"min_score": 8}, show_progress=False)
    assert m["pairs"] == 1 and m["info"]["options"] == {"min_score": 8}


def test_folder_inputs_are_expanded_by_the_builder(tmp_path):
    docs = tmp_path / "html"
    docs.mkdir()
    dumps.pydocs_html(docs)
    (docs / "_static").mkdir()
    (docs / "_static" / "basic.css").write_text("body { margin: 0 }")
    (docs / "objects.inv").write_bytes(b"\x00\x01binary")
    m = build_pairs("pydocs", [docs], tmp_path / "out", show_progress=False)
    assert m["pairs"] == 3 and m["info"]["inputs"] == 1  # json.html only: no index, css or binary files


def test_apt_install_explains_what_to_run(monkeypatch):
    from e5kit.data import apt_install as apt
    from e5kit.errors import E5kitError

    monkeypatch.setattr(apt.shutil, "which", lambda name: None)
    with pytest.raises(E5kitError, match="apt-get not found"):
        apt.apt_install(["wordnet-base"])
    monkeypatch.setattr(apt.shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(apt.os, "geteuid", lambda: 1000)
    with pytest.raises(E5kitError, match="apt-get install -y wordnet-base"):
        apt.apt_install(["wordnet-base"])
    ran = []
    monkeypatch.setattr(apt.os, "geteuid", lambda: 0)
    monkeypatch.setattr(apt.subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    apt.apt_install(["wordnet-base"])
    assert ran[0][:2] == ["apt-get", "update"] and ran[1][-1] == "wordnet-base"


def test_local_corpus_missing_files_installs_when_asked(tmp_path, monkeypatch):
    mod = get_source("wordnet")
    monkeypatch.setattr(mod, "WORDNET_DIR", tmp_path / "nowhere")
    installed = []
    monkeypatch.setattr(mod, "apt_install", lambda pkgs: installed.append(list(pkgs)))
    assert mod.default_inputs(install=False) == [] and installed == []
    assert mod.default_inputs(install=True) == [] and installed == [["wordnet-base"]]
    with pytest.raises(Exception, match="wordnet-base"):
        build_pairs("wordnet", [], tmp_path / "o", install=False, show_progress=False)


def papers_with_bad_lines(folder, good=25, bad=25):
    """A papers JSON-lines file of `good` papers and `bad` malformed lines (bad JSON and wrong types), mixed."""
    import json

    lines = [json.dumps({"id": f"p{i}", "title": f"Paper number {i}", "abstract": f"The abstract of paper {i}."})
             for i in range(good)]
    for j in range(bad):
        lines.insert(2 * j + 1, "{oops" if j % 2 else json.dumps({"title": 5, "abstract": "wrong type"}))
    path = folder / "papers.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_build_counts_bad_records_and_stops_above_the_fraction(tmp_path):
    """Issue 13 item 12: `pairs build` dropped 25 of 50 bad lines without a word; now one policy for all stages."""
    from e5kit.errors import InputFormatError

    path = papers_with_bad_lines(tmp_path)
    with pytest.raises(InputFormatError, match=r"25 of 50 input records were malformed.*max_bad_fraction"):
        build_pairs("papers", [path], tmp_path / "o", show_progress=False)
    assert not read_manifest(tmp_path / "o")["done"]
    m = build_pairs("papers", [path], tmp_path / "o2", max_bad_fraction=0.6, show_progress=False)
    assert m["done"] and m["pairs"] == 25
    assert m["bad_records"]["seen"] == 50 and m["bad_records"]["bad"] == 25
    logged = (tmp_path / "o2" / "pairs.bad_records.log").read_text().splitlines()
    assert len(logged) == 25 and logged[0].startswith(f"{path}:2\t") and logged[1].startswith(f"{path}:4\t")
    assert "'title' must be a string" in logged[0] and "malformed JSON" in logged[1]


def test_build_bad_record_counts_survive_a_resume(tmp_path, monkeypatch):
    files = []
    for k in range(3):
        (tmp_path / f"d{k}").mkdir()
        files.append(papers_with_bad_lines(tmp_path / f"d{k}", good=200, bad=1))
    mod = get_source("papers")
    real = mod.iter_file
    calls = []

    def crashing(path, **kw):
        calls.append(path)
        if len(calls) == 3:
            raise KeyboardInterrupt
        yield from real(path, **kw)

    monkeypatch.setattr(mod, "iter_file", crashing)
    with pytest.raises(KeyboardInterrupt):
        build_pairs("papers", files, tmp_path / "out", shard_bytes=1024, show_progress=False)
    monkeypatch.setattr(mod, "iter_file", real)
    m = build_pairs("papers", files, tmp_path / "out", shard_bytes=1024, show_progress=False)
    assert m["pairs"] == 600 and (m["bad_records"]["seen"], m["bad_records"]["bad"]) == (603, 3)


def test_build_refuses_unknown_or_mistyped_options(tmp_path):
    """Issue 13 item 23: an unknown --option raised Python's 'unexpected keyword argument'."""
    posts = dumps.stackexchange_posts(tmp_path)
    with pytest.raises(ValueError, match=r"unknown option 'min_scor' for source stackexchange; valid: "
                                         r"max_answer_chars \(default 8000\), min_score \(default 1\)"):
        build_pairs("stackexchange", [posts], tmp_path / "o", options={"min_scor": 2}, show_progress=False)
    with pytest.raises(ValueError, match="option min_score must be an int, got 'high'"):
        build_pairs("stackexchange", [posts], tmp_path / "o", options={"min_score": "high"}, show_progress=False)
    with pytest.raises(ValueError, match="source wordnet takes no options"):
        build_pairs("wordnet", wordnet_files(tmp_path, 1), tmp_path / "o", options={"x": 1}, show_progress=False)
    with pytest.raises(ValueError, match="unknown option 'bad'"):  # the policy object is not a user option
        build_pairs("papers", [posts], tmp_path / "o", options={"bad": None}, show_progress=False)
    assert not (tmp_path / "o").exists()  # refused before any work


def test_build_refuses_an_empty_input_folder(tmp_path):
    """Issue 13 item 24: `pairs build` on an empty folder exited 0 while other stages refuse it."""
    from e5kit.errors import E5kitError

    (tmp_path / "empty").mkdir()
    with pytest.raises(E5kitError, match="no input files for source wordnet"):
        build_pairs("wordnet", [tmp_path / "empty"], tmp_path / "o", show_progress=False)
    docs = tmp_path / "css-only"
    docs.mkdir()
    (docs / "basic.css").write_text("body { margin: 0 }")
    with pytest.raises(E5kitError, match="no input files for source pydocs"):
        build_pairs("pydocs", [docs], tmp_path / "o", show_progress=False)


def test_build_resume_with_other_options_is_refused(tmp_path):
    """Resume only with identical settings: a finished build is not returned for other builder options."""
    from e5kit.errors import E5kitError

    posts = dumps.stackexchange_posts(tmp_path)
    assert build_pairs("stackexchange", [posts], tmp_path / "o", options={"min_score": 8},
                       show_progress=False)["pairs"] == 1
    with pytest.raises(E5kitError, match=r"options: \{'min_score': 8\} != \{\}.*--no-resume"):
        build_pairs("stackexchange", [posts], tmp_path / "o", show_progress=False)
    m = build_pairs("stackexchange", [posts], tmp_path / "o", resume=False, show_progress=False)
    assert m["pairs"] == 2 and m["info"]["options"] == {} and len(list(iter_pairs(tmp_path / "o"))) == 2


def test_concurrent_build_into_one_folder_is_refused(tmp_path):
    """Issue 13 item 30: two builds into one folder shared a .tmp name; the second now fails on a lock."""
    from e5kit.data.shards import PairWriter
    from e5kit.errors import E5kitError

    files = wordnet_files(tmp_path)
    holder = PairWriter(tmp_path / "out", info={"source": "wordnet"})  # a build that is still running
    holder.write(next(iter(get_source("wordnet").iter_file(files[0]))))
    with pytest.raises(E5kitError, match=r"another process is writing 'pairs' shards.*pid"):
        build_pairs("wordnet", files, tmp_path / "out", show_progress=False)
    assert list((tmp_path / "out").glob("pairs-*.tmp"))  # the running build's open shard was left alone
    holder.close()
    other = build_pairs("wordnet", files, tmp_path / "out", part="1/2", show_progress=False)  # parts do not clash
    assert other["done"]
