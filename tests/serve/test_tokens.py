"""RequestTokenizer: text and token-id inputs give the ids E5 uses; limits and bad values are refused."""

from __future__ import annotations

import pytest

from e5kit.serve.tokens import BadInputError, InputTooLongError, RequestTokenizer


@pytest.fixture(scope="module")
def tok(e5_model):
    return RequestTokenizer(e5_model)


def test_text_ids_equal_model_tokenizer_with_prefix(tok, e5_model):
    texts = ["what is protein", "", "query: already prefixed"]
    got = tok.texts(texts, prefix="query: ", truncate=False)
    want = e5_model.engine.tokenizer(["query: what is protein", "query: ", "query: already prefixed"])
    assert got.ids == want.ids and got.tokens == sum(want.lengths) and got.truncated == 0


@pytest.mark.parametrize("prefix", ["", "query: ", "passage: "])
def test_token_ids_give_same_ids_as_text(tok, e5_model, prefix):
    texts = ["what is protein", "water and fire", "passage: the cell"]
    arrays = [e5_model.engine.tokenizer.hf(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert tok.token_ids(arrays, prefix=prefix, truncate=False).ids == \
        tok.texts(texts, prefix=prefix, truncate=False).ids


def test_over_limit_refused_with_counts_or_cut(tok):
    long_text = "water " * 100
    with pytest.raises(InputTooLongError, match=r"limit of 64 tokens \(input\[1\] has 102\)"):
        tok.texts(["short", long_text], prefix="", truncate=False)
    cut = tok.texts(["short", long_text], prefix="", truncate=True)
    assert len(cut.ids[1]) == 64 and cut.truncated == 1
    with pytest.raises(InputTooLongError, match=r"input\[0\] has 202"):
        tok.token_ids([[10] * 200], prefix="", truncate=False)
    assert len(tok.token_ids([[10] * 200], prefix="query: ", truncate=True).ids[0]) == 64


def test_text_at_exact_limit_is_not_refused(tok):
    ids = tok.token_ids([[10] * 62], prefix="", truncate=False).ids
    assert len(ids[0]) == 64


@pytest.mark.parametrize("bad", [-1, 10**9])
def test_token_id_outside_vocabulary(tok, bad):
    with pytest.raises(BadInputError, match=f"token id {bad}"):
        tok.token_ids([[5, bad]], prefix="", truncate=False)


def test_prefix_roles(tok):
    assert tok.prefix("query", "p") == "query: " and tok.prefix("passage", "p") == "passage: "
    assert tok.prefix("none", "p") == tok.prefix(None, "p") == ""
    with pytest.raises(BadInputError, match="'search' is not one of"):
        tok.prefix("search", "prompt_name")


def test_keep_end_keeps_the_prefix_and_the_last_words(tok, e5_model):
    words = [f"{w}" for w in ("water", "fire", "earth", "light") * 30]  # 120 one-token words
    text = " ".join(words)
    got = tok.texts(["short", text], prefix="query: ", truncate=True, keep_end=True)
    want = e5_model.tokenize(["short", " ".join(words[-60:])], prefix="query: ")  # 64 = 2 + 2 + 60
    assert got.ids == want.ids and got.truncated == 1
    assert tok.texts([text], prefix="query: ", truncate=True).ids == e5_model.tokenize([text], prefix="query: ").ids
