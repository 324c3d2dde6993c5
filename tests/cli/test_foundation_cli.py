"""`e5kit encode` and `e5kit similarity`; exit codes 0/1/2, one-line errors, fast --help."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from e5kit import E5
from e5kit.cli import main


def test_encode_txt_to_npy_matches_python_api(tiny_e5, tmp_path):
    src = tmp_path / "in.txt"
    src.write_text("water\nfire and light\n")
    assert main(["encode", str(src), "-o", str(tmp_path / "out.npy"), "--role", "query", "--model", str(tiny_e5)]) == 0
    got = np.load(tmp_path / "out.npy")
    np.testing.assert_allclose(got, E5(tiny_e5).encode_queries(["water", "fire and light"]), atol=1e-6)
    assert not (tmp_path / "out.ids.jsonl").exists()  # plain text has no ids


def test_encode_jsonl_passages_keeps_ids(tiny_e5, tmp_path):
    src = tmp_path / "corpus.jsonl"
    src.write_text(json.dumps({"_id": "d1", "title": "Protein", "text": "eat food"}) + "\n"
                   + json.dumps({"_id": "d2", "text": "water"}) + "\n")
    for out in ("out.jsonl", "out.parquet", "out.npy"):
        assert main(["encode", str(src), "-o", str(tmp_path / out), "--role", "passage", "--model", str(tiny_e5)]) == 0
    rows = [json.loads(x) for x in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["d1", "d2"]
    expected = E5(tiny_e5).encode_passages([{"title": "Protein", "text": "eat food"}, "water"])
    np.testing.assert_allclose(np.array([r["embedding"] for r in rows]), expected, atol=1e-6)
    assert [json.loads(x) for x in (tmp_path / "out.ids.jsonl").read_text().splitlines()] == ["d1", "d2"]


def test_encode_from_stdin(tiny_e5, tmp_path):
    out = tmp_path / "o.npy"
    proc = subprocess.run([sys.executable, "-m", "e5kit", "encode", "-", "-o", str(out), "--role", "none",
                           "--model", str(tiny_e5)], input="one\ntwo\nthree\n", text=True, capture_output=True)
    assert proc.returncode == 0, proc.stderr
    assert np.load(out).shape == (3, E5(tiny_e5).dim)


def test_malformed_jsonl_is_one_line_with_line_number(tiny_e5, tmp_path, capsys):
    src = tmp_path / "bad.jsonl"
    src.write_text('{"text": "ok"}\n{"text": oops}\n')
    assert main(["encode", str(src), "-o", str(tmp_path / "o.npy"), "--role", "query", "--model", str(tiny_e5)]) == 1
    err = capsys.readouterr().err.strip()
    assert "bad.jsonl:2: malformed JSON line" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o.npy").exists()


def test_bad_output_format_fails_before_encoding(tiny_e5, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("x\n")
    assert main(["encode", str(src), "-o", str(tmp_path / "o.csv"), "--role", "query", "--model", str(tiny_e5)]) == 1
    assert "unknown format" in capsys.readouterr().err


def test_missing_model_is_runtime_error(tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("x\n")
    assert main(["encode", str(src), "-o", str(tmp_path / "o.npy"), "--role", "query",
                 "--model", str(tmp_path / "nope")]) == 1
    err = capsys.readouterr().err
    assert "no such folder" in err and "Traceback" not in err


@pytest.mark.parametrize("argv", [["encode", "x.txt"], ["encode", "x.txt", "-o", "y.npy", "--role", "doc"],
                                  ["similarity", "--query", "q"], ["no-such-command"], []])
def test_usage_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2


def test_debug_shows_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "e5kit", "--debug", "similarity", "-Q", "q", "-P", "p",
                           "--model", str(tmp_path / "nope")], capture_output=True, text=True)
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_similarity_prints_card_style_scores(tiny_e5, capsys):
    assert main(["similarity", "--model", str(tiny_e5), "-Q", "water", "-Q", "fire", "-P", "light", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    e5 = E5(tiny_e5)
    expected = e5.similarity(e5.encode_queries(["water", "fire"]), e5.encode_passages(["light"])) * 100
    np.testing.assert_allclose(np.array(out["scores"]), expected, atol=1e-3)
    assert main(["similarity", "--model", str(tiny_e5), "-Q", "water", "-P", "light", "-P", "dark"]) == 0
    table = capsys.readouterr().out
    assert "P1" in table and "P2" in table and "water" in table


def test_help_is_light():
    """--help must not import torch or transformers (it answers in well under a second)."""
    code = ("import sys; from e5kit.cli import build_parser; build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'transformers', 'numpy', 'sklearn') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_every_subcommand_has_help():
    from e5kit.cli import COMMANDS, build_parser

    parser = build_parser()
    registered = parser._subparsers._group_actions[0].choices  # noqa: SLF001
    for name in registered:
        with pytest.raises(SystemExit) as exc:
            main([name, "--help"])
        assert exc.value.code == 0
    assert set(registered) <= set(COMMANDS)
