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
