"""Evaluation with instruct models (issue 15.4): each registered task's instruction, --instruction for a run,
the prompt recorded in results, a stored result with other prompts recomputed, a clear error otherwise."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from e5kit.cli import main
from e5kit.eval.registry import REGISTRY, TASK_INSTRUCTIONS, get_dataset
from e5kit.eval.runner import evaluate
from e5kit.model.prompts import DEFAULT_INSTRUCTION

from .tiny_data import make_beir, make_pairs


@pytest.fixture(scope="module")
def instruct_e5(tiny_instruct):
    return tiny_instruct


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("instr-data")
    make_beir(root / "scifact", seed=7, n_docs=12, n_queries=4)  # a synthetic stand-in under the registered name
    return {"root": root, "beir": root / "scifact", "sts": make_pairs(root / "mini.test.jsonl.gz", seed=8, n=12)}


def prefixes(result):
    return {name: v["prefix"] for name, v in result["prefix_policy"]["inputs"].items()}


def test_every_registered_task_has_an_instruction(tmp_path):
    assert set(TASK_INSTRUCTIONS) == set(REGISTRY)
    assert all(isinstance(v, str) and v.strip() and "\n" not in v for v in TASK_INSTRUCTIONS.values())
    spec = get_dataset("scifact", tmp_path)
    assert spec.instruction == "Given a scientific claim, retrieve documents that support or refute the claim"
    assert get_dataset("sts12", tmp_path).instruction == "Retrieve semantically similar text."


def test_table_edits_take_effect(tmp_path, monkeypatch):
    monkeypatch.setitem(TASK_INSTRUCTIONS, "banking77", "Edited")
    assert get_dataset("banking77", tmp_path).instruction == "Edited"


def test_registered_task_gives_its_instruction_and_records_it(instruct_e5, data, tmp_path):
    [result] = evaluate(str(instruct_e5), ["scifact"], data_dir=data["root"], output=tmp_path, show_progress=False)
    task = TASK_INSTRUCTIONS["scifact"]
    assert prefixes(result) == {"query": f"Instruct: {task}\nQuery: ", "document": ""}
    assert result["instruction"] == task and result["prefix_policy"]["instruction"] == task


def test_user_dataset_takes_the_default_or_the_given_instruction(instruct_e5, data, tmp_path, caplog):
    task = f"sts:{data['sts']}"
    [plain] = evaluate(str(instruct_e5), [task], output=tmp_path, show_progress=False)
    assert prefixes(plain) == {"sentence": f"Instruct: {DEFAULT_INSTRUCTION}\nQuery: "}
    [given] = evaluate(str(instruct_e5), [task], output=tmp_path, show_progress=False, instruction="Compare them")
    assert prefixes(given) == {"sentence": "Instruct: Compare them\nQuery: "}
    assert given["main_score_value"] != plain["main_score_value"]  # recomputed, not the stored default-run result
    with caplog.at_level("INFO", logger="e5kit"):
        [again] = evaluate(str(instruct_e5), [task], output=tmp_path, show_progress=False,
                           instruction="Compare them")
    assert again == given and any("reusing" in r.getMessage() for r in caplog.records)


def test_a_stored_result_with_other_prompts_is_recomputed(word_e5, data, tmp_path, caplog):
    task = f"sts:{data['sts']}"
    [first] = evaluate(str(word_e5), [task], output=tmp_path, show_progress=False)
    path = next(tmp_path.rglob("mini.json"))
    stored = json.loads(path.read_text())
    stored["prefix_policy"]["inputs"]["sentence"]["prefix"] = "passage: "  # as if made with other prompts
    path.write_text(json.dumps(stored))
    with caplog.at_level("WARNING", logger="e5kit"):
        [second] = evaluate(str(word_e5), [task], output=tmp_path, show_progress=False)
    assert prefixes(second) == {"sentence": "query: "} and any("prompts differ" in r.getMessage()
                                                                 for r in caplog.records)


def test_instruction_for_a_model_without_instruct_prompts_fails_before_any_work(word_e5, data, tmp_path):
    out = tmp_path / "results"
    with pytest.raises(ValueError, match="no instruct prompts"):
        evaluate(str(word_e5), [f"sts:{data['sts']}"], output=out, instruction="Compare them")
    with pytest.raises(ValueError, match="BM25"):
        evaluate("bm25", [f"retrieval:{data['beir']}"], output=out, instruction="Compare them")
    assert not out.exists()


@pytest.mark.parametrize("bad", ["", "   "])
def test_empty_instruction_is_refused(instruct_e5, data, tmp_path, bad):
    with pytest.raises(ValueError, match="non-empty"):
        evaluate(str(instruct_e5), [f"sts:{data['sts']}"], output=tmp_path, instruction=bad)


def test_cli_instruction(instruct_e5, word_e5, data, tmp_path, capsys):
    out = tmp_path / "r"
    args = ["eval", "--tasks", f"sts:{data['sts']}", "--output", str(out), "--no-progress",
            "--instruction", "Compare them"]
    assert main(["eval", "--model", str(instruct_e5), *args[1:]]) == 0
    [path] = out.rglob("mini.json")
    assert prefixes(json.loads(path.read_text())) == {"sentence": "Instruct: Compare them\nQuery: "}
    capsys.readouterr()
    assert main(["eval", "--model", str(word_e5), *args[1:]]) == 1
    assert "no instruct prompts" in capsys.readouterr().err


def test_mteb_adapter_uses_the_task_table(instruct_e5, word_model):
    from e5kit import E5
    from e5kit.eval.mteb_adapter import MtebE5

    adapter = MtebE5(E5(instruct_e5))
    assert adapter.instruction_for(SimpleNamespace(name="SciFact")) == TASK_INSTRUCTIONS["scifact"]
    assert adapter.instruction_for(SimpleNamespace(name="AmazonCounterfactualClassification")) == \
        TASK_INSTRUCTIONS["amazon_counterfactual_en"]
    assert adapter.instruction_for(SimpleNamespace(name="Unknown")) is None  # the model's default
    assert MtebE5(E5(instruct_e5), instruction="X").instruction_for(SimpleNamespace(name="SciFact")) == "X"
    assert MtebE5(word_model).instruction_for(SimpleNamespace(name="SciFact")) is None
    with pytest.raises(ValueError, match="no instruct prompts"):
        MtebE5(word_model, instruction="X")
