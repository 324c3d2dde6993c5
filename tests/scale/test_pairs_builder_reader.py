"""`pairs clean --source NAME`: e5kit's pair builders as datatrove readers, so build -> rules -> dedup -> write is
one pipeline. The same kept pair ids with 1 and 2 tasks, duplicates planted in different dump files removed,
and the same kept pairs as building first (`pairs build`) and cleaning the built shards."""

from __future__ import annotations

import random

import pytest

from e5kit.cli import main
from e5kit.data import iter_pairs
from e5kit.data.build import build_pairs
from e5kit.data.filters import RuleConfig
from e5kit.data.shards import read_manifest
from e5kit.data.sources import get_source
from e5kit.errors import E5kitError

pytest.importorskip("datatrove", reason="the scale extra (datatrove) is not installed: pip install 'e5kit[scale]'")

from e5kit.scale.pairs import clean_pairs  # noqa: E402
from tests.scale.test_pairs_datatrove import CFG, WORDS  # noqa: E402


def _line(offset: int, word: str, gloss: str) -> str:
    return f"{offset:08d} 05 n 01 {word} 0 000 | {gloss}\n"


def wordnet_dumps(root, files: int = 4, lines: int = 10, seed: int = 0):
    """`files` WordNet data files of random glosses, with duplicates planted across files: file 3 repeats a
    (word, gloss) of file 0 in other case (exact duplicate), file 2 a gloss of file 1 under another word (near
    duplicate). Returns (paths, planted pair ids)."""
    rng = random.Random(seed)
    rows = [[(f"word{k}_{j}", " ".join(rng.choice(WORDS) for _ in range(40))) for j in range(lines)]
            for k in range(files)]
    exact_of, near_of = rows[0][2], rows[1][4]
    rows[3].insert(5, (exact_of[0].upper(), exact_of[1].upper()))
    rows[2].insert(3, ("another_word", near_of[1]))
    paths = []
    for k, file_rows in enumerate(rows):
        folder = root / f"wn{k}"
        folder.mkdir(parents=True)
        path = folder / "data.noun"
        path.write_text("".join(_line(k * 1000 + j, w, g) for j, (w, g) in enumerate(file_rows)), encoding="utf-8")
        paths.append(path)
    built = [list(get_source("wordnet").iter_file(p)) for p in paths]  # the builder's own pairs
    assert [len(b) for b in built] == [len(r) for r in rows]
    ids = {"exact": built[3][5].id, "exact_of": built[0][2].id, "near": built[2][3].id, "near_of": built[1][4].id}
    return paths, ids


def kept_ids(folder) -> list[str]:
    return [p.id for p in iter_pairs(folder)]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("builder")
    files, planted = wordnet_dumps(root / "dumps")
    cfg = RuleConfig(**CFG)
    one = clean_pairs(files, root / "t1", cfg, source="wordnet", tasks=1, workers=1, show_progress=False)
    two = clean_pairs(files, root / "t2", cfg, source="wordnet", tasks=2, workers=1, show_progress=False)
    return root, files, planted, cfg, one, two


def test_builder_reader_keeps_the_same_ids_with_1_and_2_tasks(built):
    root, _, _, _, one, two = built
    ids1, ids2 = kept_ids(root / "t1"), kept_ids(root / "t2")
    assert ids1 == ids2 and len(ids1) == len(set(ids1)) == one["kept"] == two["kept"] == 40
    assert one["input"] == two["input"] == 42
    assert two["engine"]["tasks"] == 2
    assert sorted(p.name for p in (root / "t2").glob("pairs-part*.manifest.json")) == [
        "pairs-part000of002.manifest.json", "pairs-part001of002.manifest.json"]
    # each task built its own block of dump files (files 0-1: 20 pairs; files 2-3: 22, both planted copies dropped)
    assert [read_manifest(root / "t2", f"pairs-part{r:03d}of002")["pairs"] for r in range(2)] == [20, 20]


def test_builder_reader_removes_duplicates_across_dump_files(built):
    root, _, planted, _, _, two = built
    ids = set(kept_ids(root / "t2"))  # files 0-1 in task 0, files 2-3 in task 1
    assert planted["exact_of"] in ids and planted["near_of"] in ids
    assert planted["exact"] not in ids and planted["near"] not in ids
    reasons = {s["filter"]: s["reasons"] for s in two["steps"]}
    assert reasons["exact_dedup"] == {"exact_duplicate": 1} and reasons["near_dedup"] == {"near_duplicate": 1}


def test_builder_reader_equals_build_then_clean(built):
    root, files, _, cfg, one, _ = built
    build_pairs("wordnet", files, root / "raw", show_progress=False)
    two_step = clean_pairs(root / "raw", root / "two-step", cfg, tasks=2, workers=1, show_progress=False)
    assert kept_ids(root / "two-step") == kept_ids(root / "t1")
    assert two_step["steps"] == one["steps"]


def test_cli_pairs_clean_from_a_source(built, tmp_path, capsys):
    _, files, _, _, one, _ = built
    flags = ["--source", "wordnet", "--tasks", "2", "--no-english", "--no-decontaminate", "--no-progress"]
    args = ["pairs", "clean", *map(str, files), *flags]
    assert main([*args, "-o", str(tmp_path / "out")]) == 0
    assert len(kept_ids(tmp_path / "out")) == one["kept"]
    capsys.readouterr()
    assert main([*args, "-o", str(tmp_path / "bad"), "--option", "nope=1"]) == 1
    assert "unknown option 'nope'" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main(["pairs", "clean", str(tmp_path / "out"), "-o", str(tmp_path / "bad2"), "--option", "x=1"]) == 1
    assert "needs --source" in capsys.readouterr().err and not (tmp_path / "bad2").exists()
    assert main(["pairs", "clean", str(tmp_path / "missing"), *flags, "-o", str(tmp_path / "b3")]) == 1
    assert "no such input" in capsys.readouterr().err and not (tmp_path / "b3").exists()


def test_builder_reader_resumes_only_with_the_same_source_and_options(built):
    root, files, _, cfg, _, two = built
    again = clean_pairs(files, root / "t2", cfg, source="wordnet", tasks=2, workers=1, show_progress=False)
    assert again == two  # every task completed: nothing runs again, the same report
    with pytest.raises(E5kitError, match="source"):
        clean_pairs(files, root / "t2", cfg, source="manpages", tasks=2, workers=1, show_progress=False)
    with pytest.raises(ValueError, match="must be an int"):
        clean_pairs(files, root / "t-bad", cfg, source="manpages", source_options={"max_passage_chars": "x"},
                    tasks=2, show_progress=False)
    assert not (root / "t-bad").exists()
