"""End to end on the tiny model: checkpoints E5 loads, metrics, eval hook, crash safety and resume."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from e5kit.errors import InputFormatError
from e5kit.train.state import latest, step_dirs
from e5kit.train.trainer import train
from tests.train.helpers import tiny_config, write_pairs

STEPS = 8


@pytest.fixture(scope="module")
def setup(tiny_model, tmp_path_factory):
    root = tmp_path_factory.mktemp("trainer")
    pairs = write_pairs(root / "pairs.jsonl", 120)
    return root, pairs


@pytest.fixture(scope="module")
def reference(setup, tiny_model):
    """An uninterrupted run: 8 steps, a checkpoint every 2, the last 2 kept, an eval every 4."""
    root, pairs = setup
    calls = []

    def hook(folder: Path) -> dict[str, float]:
        from e5kit import E5

        calls.append(folder.name)
        m = E5(str(folder))
        return {"selfsim": float(m.encode_queries(["protein"])[0] @ m.encode_passages(["protein cells"])[0])}

    cfg = tiny_config(tiny_model, pairs, root / "ref", steps=STEPS, save_every=2, eval_every=4)
    final = train(cfg, eval_hook=hook)
    return cfg, final, calls


def _weights(folder: Path):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def _max_diff(a, b) -> float:
    assert set(a) == set(b)
    return max((a[k] - b[k]).abs().max().item() for k in a)


def test_checkpoints_load_as_e5_with_prompts(reference):
    from e5kit import E5

    cfg, final, calls = reference
    assert final.name == f"step-{STEPS:07d}"
    assert [p.name for p in step_dirs(Path(cfg.output_dir) / "checkpoints")] == ["step-0000006", "step-0000008"]
    m = E5(str(final))
    assert m.prompts == {"query": "query: ", "passage": "passage: "}
    vec = m.encode_queries(["what is a protein"])
    assert vec.shape == (1, 32) and abs(float((vec**2).sum()) - 1) < 1e-5
    saved = yaml.safe_load((final / "train_config.json").read_text())
    assert saved["steps"] == STEPS and saved["batch_size"] == cfg.batch_size
    assert calls == ["step-0000004", "step-0000008"]


def test_metrics_written(reference):
    from e5kit.train.metrics import read_metrics

    cfg, _, _ = reference
    records = read_metrics(Path(cfg.output_dir))
    train_recs = [r for r in records if "loss" in r]
    assert [r["step"] for r in train_recs] == list(range(1, STEPS + 1))
    assert all(math.isfinite(r["loss"]) and 0 <= r["accuracy"] <= 1 and r["pairs_per_s"] > 0 for r in train_recs)
    assert train_recs[0]["lr"] == 0.0 and train_recs[2]["lr"] == pytest.approx(cfg.lr)  # 2 warm-up steps
    assert [r["step"] for r in records if "eval/selfsim" in r] == [4, 8]


def _run_killed(cfg, tmp_path, patch: str) -> subprocess.CompletedProcess:
    """Run `e5kit train` in a child whose code is patched to SIGKILL itself at a chosen point."""
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg.to_dict()))
    script = textwrap.dedent("""
        import os, signal, sys
        {patch}
        from e5kit.cli import main
        sys.exit(main(["train", {cfg!r}, "--no-progress"]))
    """).format(patch=textwrap.dedent(patch).strip().replace("\n", "\n"), cfg=str(cfg_file))
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)


def test_sigkill_mid_run_then_resume_equals_uninterrupted(reference, setup, tiny_model, tmp_path):
    root, pairs = setup
    ref_cfg, ref_final, _ = reference
    cfg = tiny_config(tiny_model, pairs, tmp_path / "run", steps=STEPS, save_every=2)
    proc = _run_killed(cfg, tmp_path, """
        import e5kit.train.trainer as T
        _step = T.Trainer.step
        def step(self, n):
            if n == 5:  # mid-way through step 6, after checkpoint 4 was written
                os.kill(os.getpid(), signal.SIGKILL)
            return _step(self, n)
        T.Trainer.step = step
    """)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert latest(Path(cfg.output_dir) / "checkpoints").name == "step-0000004"
    final = train(cfg, resume=True)
    diff = _max_diff(_weights(final), _weights(ref_final))
    print(f"SIGKILL at step 6, resumed from step 4: max |weight diff| vs uninterrupted = {diff:.2e}")
    assert diff <= 1e-6


def test_kill_during_checkpoint_write_keeps_previous_usable(reference, setup, tiny_model, tmp_path):
    from e5kit import E5

    root, pairs = setup
    _, ref_final, _ = reference
    cfg = tiny_config(tiny_model, pairs, tmp_path / "run", steps=STEPS, save_every=2)
    proc = _run_killed(cfg, tmp_path, """
        import e5kit.train.state as S
        _write = S.write_state_files
        def write(tmp, state):
            if state["step"] == 6:  # half a state file, then the kill
                (tmp / S.STATE_FILE).write_bytes(b"partial")
                os.kill(os.getpid(), signal.SIGKILL)
            _write(tmp, state)
        S.write_state_files = write
    """)
    assert proc.returncode == -9, proc.stderr[-2000:]
    ckpts = Path(cfg.output_dir) / "checkpoints"
    assert latest(ckpts).name == "step-0000004"
    assert any(p.name.startswith(".step-0000006") for p in ckpts.iterdir())  # the half-written one
    assert E5(str(latest(ckpts))).encode(["protein"]).shape == (1, 32)
    final = train(cfg, resume=True)
    assert not any(p.name.startswith(".") for p in ckpts.iterdir())
    diff = _max_diff(_weights(final), _weights(ref_final))
    print(f"kill during checkpoint 6 write, resumed from step 4: max |weight diff| = {diff:.2e}")
    assert diff <= 1e-6


def test_options_fresh_model_bf16_checkpointing_hard_negatives(tiny_model, tmp_path):
    from e5kit import E5
    from e5kit.train.config import ModelSizes

    pairs = write_pairs(tmp_path / "p.jsonl", 40, negatives=2)
    cfg = tiny_config("", pairs, tmp_path / "run", steps=2, save_every=2, chunk_size=0, bf16=True,
                      gradient_checkpointing=True, hard_negatives=2, symmetric=True, dropout=True,
                      freeze_position_embeddings=False,
                      fresh=ModelSizes(tokenizer=str(tiny_model), hidden=32, layers=1, heads=2, intermediate=64,
                                       max_positions=64))
    final = train(cfg)
    assert E5(str(final)).encode_passages(["water"]).shape == (1, 32)


def test_frozen_position_embeddings_do_not_move(reference, tiny_model):
    cfg, final, _ = reference
    start, end = _weights(tiny_model), _weights(final)
    key = "embeddings.position_embeddings.weight"
    assert _max_diff({key: start[key]}, {key: end[key]}) == 0.0
    word = "embeddings.word_embeddings.weight"
    assert _max_diff({word: start[word]}, {word: end[word]}) > 0


def test_max_minutes_stops_with_a_checkpoint(tiny_model, tmp_path):
    pairs = write_pairs(tmp_path / "p.jsonl", 40)
    final = train(tiny_config(tiny_model, pairs, tmp_path / "run", steps=50, save_every=50, max_minutes=1e-6))
    assert final.name == "step-0000001"


def test_run_fails_on_too_many_malformed_pairs(tiny_model, tmp_path):
    pairs = write_pairs(tmp_path / "p.jsonl", 20, bad_lines=10)
    with pytest.raises(InputFormatError, match="malformed"):
        train(tiny_config(tiny_model, pairs, tmp_path / "run", steps=2, max_bad_fraction=0.05))


def test_eval_hook_runs_e5kit_evaluator(reference, tmp_path):
    """The hook scores a checkpoint with e5kit.eval on a user STS file (not the shared evaluation data)."""
    import gzip
    import json

    from e5kit.train.evalhook import hook_for_tasks

    cfg, final, _ = reference
    rows = [{"sentence1": "protein cells", "sentence2": "protein cell", "score": 4.5},
            {"sentence1": "water fire", "sentence2": "dark light", "score": 0.5},
            {"sentence1": "big food", "sentence2": "small food", "score": 2.5}]
    path = tmp_path / "mini.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    scores = hook_for_tasks([f"sts:{path}"])(final)
    assert list(scores) and all(-1.0 <= v <= 1.0 for v in scores.values())
    assert hook_for_tasks([]) is None
    with pytest.raises(ValueError, match="unknown dataset"):
        hook_for_tasks(["no-such-task"])


def test_cli_print_config_and_plot(reference, tmp_path, capsys):
    from e5kit.cli import main

    cfg, _, _ = reference
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(cfg.to_dict()))
    assert main(["train", str(cfg_file), "--print-config", "--steps", "99", "--set", "symmetric=true"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["steps"] == 99 and printed["symmetric"] is True
    assert main(["plot", cfg.output_dir, "--out", str(tmp_path / "plots")]) == 0
    names = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert names == ["accuracy.png", "eval.png", "loss.png", "lr.png"]
    assert all((tmp_path / "plots" / n).stat().st_size > 5000 for n in names)
    assert main(["plot", str(tmp_path / "nowhere")]) == 1
    assert main(["train", str(cfg_file), "--set", "stepz=1"]) == 1


def test_fresh_run_into_a_used_output_dir_is_refused(tiny_model, tmp_path):
    """Issue 13 item 2: a fresh run into a finished run's folder lost its own checkpoint to keep_last, reported
    the old run's checkpoint and cut the old metrics.jsonl."""
    from e5kit.errors import E5kitError
    from e5kit.train.metrics import read_metrics

    pairs = write_pairs(tmp_path / "p.jsonl", 60)
    out = tmp_path / "run"
    first = train(tiny_config(tiny_model, pairs, out, steps=4, save_every=2))
    assert first.name == "step-0000004"
    metrics_before = (out / "metrics.jsonl").read_bytes()
    with pytest.raises(E5kitError, match=r"holds a training run \(checkpoints up to step 4\).*--resume.*--overwrite"):
        train(tiny_config(tiny_model, pairs, out, steps=3, save_every=3))
    assert (out / "metrics.jsonl").read_bytes() == metrics_before
    assert [p.name for p in step_dirs(out / "checkpoints")] == ["step-0000002", "step-0000004"]
    (out / "notes.txt").write_text("mine")  # not e5kit's: never deleted
    final = train(tiny_config(tiny_model, pairs, out, steps=3, save_every=3), overwrite=True)
    assert final.name == "step-0000003"
    assert [p.name for p in step_dirs(out / "checkpoints")] == ["step-0000003"]
    assert [r["step"] for r in read_metrics(out)] == [1, 2, 3] and (out / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="resume.*overwrite"):
        train(tiny_config(tiny_model, pairs, out), resume=True, overwrite=True)


def test_retention_deletes_only_checkpoints_of_the_current_run(tmp_path):
    """Issue 13 item 2: keep_last deleted the new run's step-3 because an older run had higher step numbers."""
    from e5kit.train.state import save_training_checkpoint

    def model(folder):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"w")

    root = tmp_path / "checkpoints"
    for step in (20, 40):
        save_training_checkpoint(root, step, write_model=model, state={"step": step}, keep_last=1, run_id="old")
    assert [p.name for p in step_dirs(root)] == ["step-0000040"]
    for step in (1, 2, 3):
        save_training_checkpoint(root, step, write_model=model, state={"step": step}, keep_last=2, run_id="new")
    assert [p.name for p in step_dirs(root)] == ["step-0000002", "step-0000003", "step-0000040"]


def test_resume_with_other_settings_is_refused(tiny_model, tmp_path):
    """Resume only with identical settings; steps, checkpoints and logging may change."""
    from e5kit.train.config import ConfigError

    pairs = write_pairs(tmp_path / "p.jsonl", 60)
    cfg = tiny_config(tiny_model, pairs, tmp_path / "run", steps=2, save_every=2)
    train(cfg)
    with pytest.raises(ConfigError, match=r"other settings: batch_size: 8 != 4; lr: 0.001 != 0.002"):
        train(tiny_config(tiny_model, pairs, tmp_path / "run", steps=4, batch_size=4, lr=2e-3), resume=True)
    final = train(tiny_config(tiny_model, pairs, tmp_path / "run", steps=4, save_every=4, keep_last=1),
                  resume=True)
    assert final.name == "step-0000004"


def test_batch_of_one_without_hard_negatives_is_refused(tiny_model, tmp_path):
    """Issue 13 item 29: batch_size 1 has no in-batch negative, so the loss is 0 and nothing is learnt."""
    from e5kit.train.config import ConfigError
    from e5kit.train.trainer import pair_texts

    pairs = write_pairs(tmp_path / "p.jsonl", 20)
    with pytest.raises(ConfigError, match="batch_size 1 .*no in-batch negative.*hard_negatives"):
        train(tiny_config(tiny_model, pairs, tmp_path / "run", batch_size=1, chunk_size=0))
    assert not (tmp_path / "run").exists()
    with_negs = write_pairs(tmp_path / "n.jsonl", 20, negatives=1)
    final = train(tiny_config(tiny_model, with_negs, tmp_path / "ok", batch_size=1, chunk_size=0, hard_negatives=1,
                              steps=1, save_every=1))
    assert final.name == "step-0000001"
    from e5kit.data.pairs import Pair

    cfg = tiny_config(tiny_model, pairs, tmp_path / "x", batch_size=1, chunk_size=0, hard_negatives=1)
    with pytest.raises(ValueError, match="no 'negatives'.*own passage"):
        pair_texts([Pair("q", "p", "s")], cfg)


def test_cli_refuses_a_used_output_dir_and_validates_print_config(tiny_model, tmp_path, capsys):
    from e5kit.cli import main

    pairs = write_pairs(tmp_path / "p.jsonl", 40)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(yaml.safe_dump(tiny_config(tiny_model, pairs, tmp_path / "run", steps=1,
                                                   save_every=1).to_dict()))
    assert main(["train", str(cfg_file)]) == 0
    capsys.readouterr()
    assert main(["train", str(cfg_file)]) == 1
    assert "--resume" in capsys.readouterr().err
    assert main(["train", str(cfg_file), "--overwrite"]) == 0
    assert capsys.readouterr().out.strip().endswith("step-0000001")
    with pytest.raises(SystemExit):
        main(["train", str(cfg_file), "--overwrite", "--resume"])
    assert main(["train", str(cfg_file), "--print-config", "--lr", "-1"]) == 1
    assert "lr must be in (0, 1], got -1.0" in capsys.readouterr().err
