import json

import pytest

from e5kit.train.metrics import MetricsLog, read_metrics
from e5kit.train.plot import plot_run


def test_resume_drops_records_after_the_checkpoint_and_reader_skips_a_cut_line(tmp_path):
    log = MetricsLog(tmp_path, tensorboard=False)
    for step in range(1, 6):
        log.write(step, {"loss": 1.0 / step, "accuracy": 0.5, "lr": 0.1})
    with open(tmp_path / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 6, "loss": 0.1')  # a line cut short by a kill
    resumed = MetricsLog(tmp_path, resume_step=3, tensorboard=False)
    resumed.write(4, {"loss": 9.0, "accuracy": 0.5, "lr": 0.1})
    resumed.write(4, {"eval/sts": 0.5})
    records = read_metrics(tmp_path)
    assert [(r["step"], "loss" in r) for r in records] == [(1, True), (2, True), (3, True), (4, True), (4, False)]
    assert records[3]["loss"] == 9.0


def test_fresh_log_starts_empty(tmp_path):
    (tmp_path / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 5.0}) + "\n")
    MetricsLog(tmp_path, tensorboard=False)
    assert (tmp_path / "metrics.jsonl").read_text() == ""


def test_plot_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="training run folder"):
        plot_run(tmp_path)
    (tmp_path / "metrics.jsonl").write_text("")
    with pytest.raises(ValueError, match="no training records"):
        plot_run(tmp_path)
    MetricsLog(tmp_path, tensorboard=False).write(1, {"loss": 1.0, "accuracy": 0.1, "lr": 0.0})
    with pytest.raises(ValueError, match="smooth"):
        plot_run(tmp_path, smooth=-1)
    assert [p.name for p in plot_run(tmp_path)] == ["loss.png", "accuracy.png", "lr.png"]
