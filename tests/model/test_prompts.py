"""Prefix policy is data: E5 family by name, stored prompts trusted, everything else none."""

from __future__ import annotations

import pytest

from e5kit.model.prompts import E5_PROMPTS, add_prefix, passage_text, policy_for


@pytest.mark.parametrize("name", [
    "intfloat/e5-base-unsupervised", "intfloat/e5-small-unsupervised", "intfloat/e5-large-v2",
    "intfloat/multilingual-e5-base", "/models/e5-base-unsupervised", "E5-Base-Unsupervised",
])
def test_e5_family_gets_e5_prompts(name):
    policy = policy_for(name, None)
    assert dict(policy.prompts) == E5_PROMPTS and policy.source.startswith("family:")


@pytest.mark.parametrize("name", ["sentence-transformers/all-MiniLM-L6-v2", "bert-base-uncased", "my-e5x-model",
                                  "e5kit-tiny", ""])
def test_other_models_get_none(name):
    policy = policy_for(name, None)
    assert dict(policy.prompts) == {} and policy.source == "none"
    assert policy.prefix_for("query") == ""


def test_stored_prompts_win_over_family_and_user_wins_over_all():
    stored = {"query": "Q: ", "doc": "D: "}
    assert dict(policy_for("intfloat/e5-base", stored).prompts) == stored
    assert policy_for("intfloat/e5-base", stored).source == "checkpoint"
    assert dict(policy_for("x", stored, {"query": "q "}).prompts) == {"query": "q "}


def test_add_prefix_never_doubles():
    assert add_prefix("hello", "query: ") == "query: hello"
    assert add_prefix("query: hello", "query: ") == "query: hello"
    assert add_prefix("passage: hello", "query: ") == "query: passage: hello"  # no other prompts named
    assert add_prefix("passage: hello", "query: ", also=("query: ", "passage: ")) == "passage: hello"
    assert add_prefix("", "query: ") == "query: "
    assert add_prefix("hello", "") == "hello"


def test_policy_never_gives_a_second_role_prompt():
    """A text the caller already marked with any of the model's prompts keeps it (issue 15.3)."""
    e5 = policy_for("intfloat/e5-base-v2", None)
    assert e5.add("passage: X", e5.prefix_for("query")) == "passage: X"
    assert e5.add("query: X", e5.prefix_for("passage")) == "query: X"
    assert e5.add("X", e5.prefix_for("passage")) == "passage: X"
    stored = policy_for("m", {"query": "Q: ", "doc": "D: "})
    assert stored.prefix_for("passage") == "D: " and stored.add("Q: x", "D: ") == "Q: x"


def test_passage_text_joins_title_and_text():
    assert passage_text({"title": "T", "text": "body"}, 0) == "T body"
    assert passage_text({"title": "", "text": "body"}, 0) == "body"
    assert passage_text({"text": "body"}, 0) == "body"
    assert passage_text("plain", 0) == "plain"


@pytest.mark.parametrize("bad, msg", [
    ({"title": "T"}, "without a 'text' key"), ({"text": 3}, "must be str"), (42, "index 7 is int"), (None, "NoneType"),
])
def test_passage_text_rejects_bad_items(bad, msg):
    with pytest.raises(TypeError, match=msg):
        passage_text(bad, 7)


def test_empty_stored_prompts_mean_none_and_document_aliases_passage():
    assert policy_for("x", {"query": "", "document": ""}).source == "none"
    policy = policy_for("x", {"query": "Q: ", "document": "D: "})
    assert policy.prefix_for("passage") == "D: " and policy.prefix_for("query") == "Q: "
    assert policy.knows("passage") and policy.knows("document") and not policy.knows("title")


# -- issue 15: the instruct models and one policy ---------------------------------------------------
INSTRUCT_NAMES = ["intfloat/multilingual-e5-large-instruct", "intfloat/e5-mistral-7b-instruct",
                  "/models/multilingual-e5-large-instruct", "E5-Mistral-7B-Instruct"]


@pytest.mark.parametrize("name", INSTRUCT_NAMES)
def test_instruct_models_format_queries_and_leave_documents_bare(name):
    from e5kit.model.prompts import DEFAULT_INSTRUCTION

    policy = policy_for(name, None)
    assert policy.instruct and policy.source == "family:e5-instruct"
    assert policy.prefix_for("query") == f"Instruct: {DEFAULT_INSTRUCTION}\nQuery: "
    assert policy.prefix_for("query", "Find the claim") == "Instruct: Find the claim\nQuery: "
    assert policy.prefix_for("passage") == "" and policy.prefix_for("none") == ""
    assert policy.add("x", policy.prefix_for("passage")) == "x"


@pytest.mark.parametrize("name", ["intfloat/e5-base-instruct-v2", "my-instruct", "e5-large-v2-instruct-x"])
def test_instruct_pattern_does_not_catch_other_names(name):
    assert not policy_for(name, None).instruct


def test_default_instruction_is_logged_once(caplog):
    import logging

    from e5kit.model import prompts

    policy = policy_for("intfloat/e5-mistral-7b-instruct", None)
    prompts._said.clear()
    with caplog.at_level(logging.INFO, logger="e5kit"):
        policy.prefix_for("query")
        policy.prefix_for("query")
        policy.prefix_for("query", "Given a claim, find documents")
    said = [r for r in caplog.records if "default" in r.getMessage()]
    assert len(said) == 1 and "Given a web search query" in said[0].getMessage()


def test_an_instruct_text_gets_no_second_prompt():
    policy = policy_for("intfloat/multilingual-e5-large-instruct", None)
    q = policy.prefix_for("query", "Task A")
    assert policy.add("Instruct: Task B\nQuery: hi", q) == "Instruct: Task B\nQuery: hi"  # another instruction
    assert policy.add("Instruct: Task A\nQuery: hi", q) == "Instruct: Task A\nQuery: hi"
    assert policy.add("Instruct: no query line", q) == q + "Instruct: no query line"
    assert policy.add("query: hi", q) == q + "query: hi"  # not this model's prompt


@pytest.mark.parametrize("name, stored", [("intfloat/e5-base-v2", None), ("bert-base-uncased", None),
                                          ("x", {"query": "Q: ", "doc": "D: "})])
def test_instruction_for_a_model_without_instruct_prompts_is_a_clear_error(name, stored):
    with pytest.raises(ValueError, match="no instruct prompts"):
        policy_for(name, stored).prefix_for("query", "Given a claim, find documents")


@pytest.mark.parametrize("bad, exc", [("", ValueError), ("   ", ValueError), (3, TypeError), (["a"], TypeError)])
def test_bad_instructions_are_refused(bad, exc):
    with pytest.raises(exc, match="instruction"):
        policy_for("intfloat/multilingual-e5-large-instruct", None).prefix_for("query", bad)


def test_instruction_on_a_document_role_is_refused():
    with pytest.raises(ValueError, match="query role"):
        policy_for("intfloat/multilingual-e5-large-instruct", None).prefix_for("passage", "Task")


def test_stored_instruct_prompts_make_an_instruct_policy_with_their_default():
    stored = {"query": "Instruct: Retrieve semantically similar text.\nQuery: ", "passage": ""}
    policy = policy_for("my-finetune", stored)
    assert policy.instruct and policy.source == "checkpoint"
    assert policy.default_instruction == "Retrieve semantically similar text."
    assert policy.prefix_for("query") == stored["query"] and policy.prefix_for("passage") == ""
    assert policy.prefix_for("query", "Other") == "Instruct: Other\nQuery: "


def test_instruct_family_with_only_task_prompts_stored_keeps_its_query_format():
    """e5-mistral's sentence-transformers config stores task prompts but no "query" one."""
    from e5kit.model.prompts import DEFAULT_INSTRUCTION

    stored = {"sts_query": "Instruct: Retrieve semantically similar text.\nQuery: "}
    policy = policy_for("intfloat/e5-mistral-7b-instruct", stored)
    assert policy.instruct and policy.prefix_for("query") == f"Instruct: {DEFAULT_INSTRUCTION}\nQuery: "
    assert policy.prefix_for("sts_query") == stored["sts_query"] and policy.knows("sts_query")


def test_stored_prompts_override_the_instruct_family():
    policy = policy_for("intfloat/multilingual-e5-large-instruct", {"query": "Q: ", "doc": "D: "})
    assert not policy.instruct and policy.prefix_for("query") == "Q: " and policy.prefix_for("passage") == "D: "


def test_record_names_the_instruction_for_instruct_models_only():
    rec = policy_for("intfloat/e5-mistral-7b-instruct", None).record({"query": "query", "document": "passage"},
                                                                      "Task")
    assert rec["inputs"]["query"]["prefix"] == "Instruct: Task\nQuery: " and rec["instruction"] == "Task"
    assert rec["inputs"]["document"]["prefix"] == ""
    assert "instruction" not in policy_for("intfloat/e5-base", None).record({"q": "query"})


def test_family_name_reads_folder_then_origin(tmp_path):
    from e5kit.model.prompts import family_name

    named = tmp_path / "multilingual-e5-large-instruct"
    named.mkdir()
    assert family_name(str(named), {"_name_or_path": "bert"}) == "multilingual-e5-large-instruct"
    plain = tmp_path / "step-100"
    plain.mkdir()
    assert family_name(str(plain), {"_name_or_path": "intfloat/e5-base-v2"}) == "intfloat/e5-base-v2"
    assert family_name(str(plain), {}) == "step-100"
    assert family_name("intfloat/e5-small", None) == "intfloat/e5-small"


def test_training_texts_follow_the_same_policy():
    """train's pair_texts asks the policy too: E5 prompts by default, instruct-form queries never doubled."""
    from e5kit.data.pairs import Pair
    from e5kit.train.config import TrainConfig
    from e5kit.train.trainer import pair_texts

    pairs = [Pair("cell", "water", "s"), Pair("passage: x", "query: y", "s")]
    assert pair_texts(pairs, TrainConfig()) == [["query: cell", "passage: x"], ["passage: water", "query: y"]]
    q = "Instruct: Find it\nQuery: "
    cfg = TrainConfig(query_prefix=q, passage_prefix="")
    marked = Pair("Instruct: Other task\nQuery: cell", "water", "s")
    assert pair_texts([pairs[0], marked], cfg) == [[q + "cell", marked.query], ["water", "water"]]
