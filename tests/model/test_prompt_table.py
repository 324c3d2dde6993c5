"""The prompt-policy table (issue 15.3): for each family x role, the Python API, the HTTP server and the
evaluator give a text the same, expected prefix, because all three ask model/prompts.py.

Tiny random checkpoints are saved under each family's name (the policy recognises families by name); one
stores sentence-transformers prompts {"query", "doc"} and one has no prompts. What each path embeds is
compared with the embedding of the expected prefixed string, so a path that computed its own prefix
(or dropped the instruction) would give another vector.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from e5kit.model.prompts import DEFAULT_INSTRUCTION
from tests.conftest import make_tiny_bert

DEFAULT_Q = f"Instruct: {DEFAULT_INSTRUCTION}\nQuery: "
TASK = "Given a claim, retrieve documents that support it"
TASK_Q = f"Instruct: {TASK}\nQuery: "
E5_ROW = {"query": "query: ", "passage": "passage: ", "none": ""}
INSTRUCT_ROW = {"query": DEFAULT_Q, "passage": "", "none": "", "instructed": TASK_Q}

# folder name (what the family is recognised by) -> role -> the prefix every path must add
TABLE: dict[str, dict[str, str]] = {
    "e5-base-unsupervised": E5_ROW,
    "e5-base-v2": E5_ROW,
    "multilingual-e5-small": E5_ROW,
    "multilingual-e5-large-instruct": INSTRUCT_ROW,
    "e5-mistral-7b-instruct": INSTRUCT_ROW,
    "st-prompts": {"query": "Q: ", "passage": "D: ", "none": ""},
    "no-prompts": {"query": "", "passage": "", "none": ""},
}
CASES = [(name, role) for name, row in TABLE.items() for role in row]
TEXTS = ["protein cell water", "what is the definition of a cell"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from e5kit import E5

    out = {}
    for i, name in enumerate(TABLE):
        folder = make_tiny_bert(tmp_path_factory.mktemp("family"), name=name, seed=10 + i, max_positions=256)
        if name == "st-prompts":
            (folder / "config_sentence_transformers.json").write_text(
                json.dumps({"prompts": {"query": "Q: ", "doc": "D: "}, "default_prompt_name": None}))
        out[name] = E5(folder)
    return out


@pytest.fixture(scope="module")
def client(models):
    from starlette.testclient import TestClient

    from e5kit.serve import ServeConfig, create_app

    with TestClient(create_app(models, ServeConfig()), raise_server_exceptions=False) as c:
        yield c


def expected(model, prefix: str) -> np.ndarray:
    """The vectors of the texts with `prefix` written in front by hand (no policy involved)."""
    return model.engine.encode([prefix + t for t in TEXTS], normalize=True)


def call(role: str) -> tuple[str, dict[str, str]]:
    """(role the API is asked for, extra keyword arguments) of a table column."""
    return ("query", {"instruction": TASK}) if role == "instructed" else (role, {})


def test_the_table_is_what_the_policy_says(models):
    for name, row in TABLE.items():
        policy = models[name].policy
        for role, prefix in row.items():
            asked, extra = call(role)
            assert policy.prefix_for(asked, **extra) == prefix, (name, role)


@pytest.mark.parametrize("name, role", CASES)
def test_python_api(models, name, role):
    model, prefix = models[name], TABLE[name][role]
    asked, extra = call(role)
    want = expected(model, prefix)
    got = model.encode(TEXTS, prompt_name=asked, **extra)
    np.testing.assert_allclose(got, want, atol=1e-6)
    if prefix:  # the check can fail: the bare texts embed differently
        assert not np.allclose(model.engine.encode(TEXTS, normalize=True), want, atol=1e-4)
    if asked == "query":
        np.testing.assert_allclose(model.encode_queries(TEXTS, **extra), want, atol=1e-6)
    if role == "passage":
        np.testing.assert_allclose(model.encode_passages(TEXTS), want, atol=1e-6)


@pytest.mark.parametrize("name, role", CASES)
def test_server(models, client, name, role):
    model, prefix = models[name], TABLE[name][role]
    asked, extra = call(role)
    want = expected(model, prefix)
    r = client.post("/embed", json={"inputs": TEXTS, "prompt_name": asked, "model": name, **extra})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array(r.json()), want, atol=1e-5)
    r = client.post("/v1/embeddings", json={"input": TEXTS, "input_type": asked, "model": name, **extra})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(np.array([d["embedding"] for d in r.json()["data"]]), want, atol=1e-5)
    r = client.post("/similarity", json={"inputs": {"source_sentence": TEXTS[0], "sentences": TEXTS[1:]},
                                         "prompt_name": asked, "model": name, **extra})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json(), [float(want[1] @ want[0])], atol=1e-5)


@pytest.mark.parametrize("name, role", [(n, r) for n, r in CASES if r != "none"])  # eval has no "none" role
def test_eval(models, name, role):
    from e5kit.eval.models import DenseModel

    model, prefix = models[name], TABLE[name][role]
    asked, extra = call(role)
    dense = DenseModel(model, show_progress=False)
    dense.instruction = extra.get("instruction")
    want = expected(model, prefix)
    np.testing.assert_allclose(dense.encode(TEXTS, asked), want, atol=1e-6)
    np.testing.assert_allclose(np.concatenate(list(dense.iter_encode(TEXTS, asked))), want, atol=1e-6)
    record = dense.policy("retrieval")["inputs"]
    assert record["query" if asked == "query" else "document"]["prefix"] == prefix


@pytest.mark.parametrize("name", [n for n, row in TABLE.items() if "instructed" not in row])
def test_an_instruction_for_a_model_without_instruct_prompts_is_refused_everywhere(models, client, name):
    from e5kit.eval.models import DenseModel

    model = models[name]
    with pytest.raises(ValueError, match="no instruct prompts"):
        model.encode_queries(TEXTS, instruction=TASK)
    r = client.post("/embed", json={"inputs": TEXTS, "prompt_name": "query", "model": name, "instruction": TASK})
    assert r.status_code == 422 and "no instruct prompts" in r.json()["error"]["message"]
    dense = DenseModel(model, show_progress=False)
    dense.instruction = TASK  # a registered task's instruction: not for this model, so not used
    np.testing.assert_allclose(dense.encode(TEXTS, "query"), expected(model, TABLE[name]["query"]), atol=1e-6)


@pytest.mark.parametrize("name", [n for n, row in TABLE.items() if "instructed" in row])
def test_instruction_only_with_the_query_role(models, client, name):
    model = models[name]
    for bad in ({"prompt_name": "passage"}, {"prefix": "x: "}, {}):
        with pytest.raises(ValueError, match="instruction"):
            model.encode(TEXTS, instruction=TASK, **bad)
    r = client.post("/embed", json={"inputs": TEXTS, "prompt_name": "passage", "model": name, "instruction": TASK})
    assert r.status_code == 422 and r.json()["error"]["param"] == "instruction"
    r = client.post("/embed", json={"inputs": TEXTS, "model": name, "instruction": ""})
    assert r.status_code == 422


@pytest.mark.parametrize("name", list(TABLE))
def test_a_text_with_one_of_the_models_prompts_gets_no_second_one(models, client, name):
    """"passage: X" sent as a query stays "passage: X"; an instruct-form query keeps its own instruction."""
    model, row = models[name], TABLE[name]
    marked = [row["passage"] + "cell water"] if row["passage"] else []
    if "instructed" in row:
        marked.append("Instruct: Find the cell\nQuery: cell water")
    for text in marked:
        want = model.engine.encode([text], normalize=True)
        np.testing.assert_allclose(model.encode_queries([text]), want, atol=1e-6)
        r = client.post("/embed", json={"inputs": [text], "prompt_name": "query", "model": name})
        np.testing.assert_allclose(np.array(r.json()), want, atol=1e-5)


@pytest.mark.parametrize("name", ["multilingual-e5-large-instruct", "e5-base-v2"])
def test_a_saved_model_keeps_its_policy_and_sentence_transformers_reproduces_it(models, tmp_path, name):
    from sentence_transformers import SentenceTransformer

    from e5kit import E5

    model, row = models[name], TABLE[name]
    folder = model.save(tmp_path / "saved")
    reloaded = E5(folder)
    assert reloaded.policy.source == "checkpoint" and reloaded.policy.instruct == model.policy.instruct
    for role, prefix in row.items():
        asked, extra = call(role)
        assert reloaded.policy.prefix_for(asked, **extra) == prefix, role
    st = SentenceTransformer(str(folder), device="cpu")
    for role in ("query", "passage"):
        want = expected(model, row[role])
        np.testing.assert_allclose(st.encode(TEXTS, prompt_name=role, convert_to_numpy=True), want, atol=1e-5)
    if "instructed" in row:
        np.testing.assert_allclose(reloaded.encode_queries(TEXTS, instruction=TASK), expected(model, TASK_Q),
                                   atol=1e-5)
