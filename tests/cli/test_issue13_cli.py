"""Issue 13 at the command line: `encode` never overwrites without --overwrite (its own input never), leaves no
stale ids, checks input and output before loading a model; `--debug` works after the subcommand."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from e5kit.cli import main


def encode(src, out, model, *extra):
    return main(["encode", str(src), "-o", str(out), "--role", "passage", "--model", str(model), *extra])


def test_issue13_encode_refuses_its_own_input_as_output(tiny_e5, tmp_path, capsys):
    src = tmp_path / "x.jsonl"
    body = json.dumps({"_id": "a", "text": "water"}) + "\n"
    src.write_text(body)
    for extra in ((), ("--overwrite",)):
        assert encode(src, src, tiny_e5, *extra) == 1
        assert "is the input" in capsys.readouterr().err
    assert src.read_text() == body


def test_issue13_encode_refuses_an_existing_output_unless_overwrite(tiny_e5, tmp_path, capsys):
    src = tmp_path / "x.txt"
    src.write_text("water\n")
    out = tmp_path / "out.jsonl"
    out.write_text("precious\n")
    assert encode(src, out, tiny_e5) == 1
    err = capsys.readouterr().err
    assert "out.jsonl exists" in err and "--overwrite" in err
    assert out.read_text() == "precious\n"
    assert encode(src, out, tiny_e5, "--overwrite") == 0
    assert len(out.read_text().splitlines()) == 1 and "embedding" in out.read_text()


def test_issue13_encode_leaves_no_stale_ids_and_keeps_odd_ids_whole(tiny_e5, tmp_path):
    src = tmp_path / "c.jsonl"
    src.write_text(json.dumps({"_id": "line\nbreak", "text": "water"}) + "\n"
                   + json.dumps({"_id": "d2", "text": "fire"}) + "\n")
    out = tmp_path / "e.npy"
    assert encode(src, out, tiny_e5) == 0
    ids = [json.loads(x) for x in (tmp_path / "e.ids.jsonl").read_text().splitlines()]
    assert ids == ["line\nbreak", "d2"]
    txt = tmp_path / "t.txt"
    txt.write_text("one\ntwo\nthree\n")
    assert encode(txt, out, tiny_e5, "--overwrite") == 0
    assert np.load(out).shape[0] == 3
    assert not (tmp_path / "e.ids.jsonl").exists()  # the old ids would describe other vectors


def test_issue13_encode_records_without_ids_write_no_ids(tiny_e5, tmp_path, capsys):
    src = tmp_path / "c.jsonl"
    src.write_text('{"text": "water"}\n{"text": "fire"}\n')
    out = tmp_path / "e.jsonl"
    assert encode(src, out, tiny_e5) == 0
    assert all("id" not in json.loads(x) for x in out.read_text().splitlines())
    mixed = tmp_path / "m.jsonl"
    mixed.write_text('{"_id": "a", "text": "water"}\n{"text": "fire"}\n')
    assert encode(mixed, tmp_path / "m.npy", tiny_e5) == 1
    assert "m.jsonl:2: no '_id'" in capsys.readouterr().err


@pytest.mark.parametrize("case", ["missing input", "malformed input", "output is input", "existing output",
                                  "output under a file", "bad output format"])
def test_issue13_encode_checks_input_and_output_before_loading_the_model(tmp_path, capsys, case):
    """A model that does not exist would fail at load: the error must be about the files, found first."""
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "ok"}\n' if case != "malformed input" else '{"text": "ok"}\n{"text": oops}\n')
    out = tmp_path / "out.npy"
    if case == "missing input":
        src = tmp_path / "nope.jsonl"
    elif case == "output is input":
        out = src
    elif case == "existing output":
        out.write_bytes(b"x")
    elif case == "output under a file":
        out = src / "out.npy"
    elif case == "bad output format":
        out = tmp_path / "out.csv"
    assert encode(src, out, tmp_path / "no-such-model") == 1
    err = capsys.readouterr().err
    assert "no-such-model" not in err, err
    named = out if case in ("existing output", "output under a file", "bad output format") else src
    assert str(named) in err, err


def test_issue13_encode_unwritable_output_names_the_output_not_a_temp_file(tiny_e5, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("water\n")
    target = Path("/proc/e.npy") if os.geteuid() == 0 else tmp_path / "ro" / "e.npy"
    if os.geteuid() != 0:
        target.parent.mkdir()
        target.parent.chmod(0o555)
    elif not Path("/proc/self").is_dir():
        pytest.skip("root without /proc")
    assert encode(src, target, tmp_path / "no-such-model") == 1
    err = capsys.readouterr().err
    assert str(target) in err and "not writable" in err and ".tmp" not in err


def test_issue13_debug_and_quiet_accepted_after_the_subcommand(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "e5kit", "similarity", "-Q", "q", "-P", "p",
                           "--model", str(tmp_path / "nope"), "--debug"], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "e5kit", "--debug", "similarity", "-Q", "q", "-P", "p",
                           "--model", str(tmp_path / "nope")], capture_output=True, text=True)
    assert "Traceback" in proc.stderr  # before the subcommand still works, and is not reset by the subparser
    from e5kit.cli import build_parser

    parser = build_parser()
    for argv in (["index", "check", "x", "--debug"], ["pairs", "stats", "x", "--debug", "--quiet"],
                 ["encode", "a.txt", "-o", "b.npy", "--role", "none", "--debug"]):
        args = parser.parse_args(argv)
        assert args.debug is True
    assert parser.parse_args(["encode", "a.txt", "-o", "b.npy", "--role", "none"]).debug is False


def test_issue13_search_checks_corpus_and_queries_before_loading_the_model(tmp_path, capsys):
    for argv, named in ((["search", str(tmp_path / "nope.jsonl"), "-q", "x"], "nope.jsonl"),
                        (["search", str(tmp_path), "--queries", str(tmp_path / "q.jsonl")], "q.jsonl")):
        assert main([*argv, "--model", str(tmp_path / "no-such-model")]) == 1
        err = capsys.readouterr().err
        assert named in err and "no-such-model" not in err, err
