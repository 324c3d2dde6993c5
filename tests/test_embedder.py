"""The E5 entry class: shapes, order, prefixes, bad inputs, truncation reporting, similarity."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from e5kit import E5


@pytest.fixture(scope="module")
def e5(tiny_e5):
    return E5(tiny_e5)


@pytest.fixture(scope="module")
def plain(tiny_bert):
    return E5(tiny_bert)


def test_shapes_dtype_and_empty_list(e5):
    assert e5.encode([]).shape == (0, e5.dim)
    assert e5.encode_queries([]).dtype == np.float32
    out = e5.encode(["a", "b c"])
    assert out.shape == (2, e5.dim) and out.dtype == np.float32
    assert e5.encode("single text").shape == (1, e5.dim)


def test_output_in_input_order_whatever_the_batching(tiny_e5):
    texts = ["short", "a much longer text " * 5, "mid length text here", "", "x " * 40]
    small = E5(tiny_e5, max_tokens_per_batch=16)  # forces one text per batch, reordered by length
    together = E5(tiny_e5).encode(texts)
    np.testing.assert_allclose(small.encode(texts), together, atol=1e-6)
    one_by_one = np.concatenate([small.encode([t]) for t in texts])
    np.testing.assert_allclose(one_by_one, together, atol=1e-6)


def test_prefixes_applied_per_role_and_never_doubled(e5):
    q = e5.encode_queries(["how much protein"])
    np.testing.assert_allclose(q, e5.encode(["query: how much protein"]), atol=1e-7)
    np.testing.assert_allclose(q, e5.encode_queries(["query: how much protein"]), atol=1e-7)
    p = e5.encode_passages([{"title": "Protein", "text": "eat food"}])
    np.testing.assert_allclose(p, e5.encode(["passage: Protein eat food"]), atol=1e-7)
    np.testing.assert_allclose(e5.encode(["x"], prefix="passage: "), e5.encode_passages(["x"]), atol=1e-7)
    assert not np.allclose(q, e5.encode(["how much protein"]))


def test_model_without_prompts_uses_none(plain):
    assert plain.prompts == {} and plain.policy.source == "none"
    np.testing.assert_allclose(plain.encode_queries(["water"]), plain.encode(["water"]), atol=1e-7)
    np.testing.assert_allclose(plain.encode_passages(["water"]), plain.encode(["water"]), atol=1e-7)


def test_prompt_override(tiny_bert):
    m = E5(tiny_bert, prompts={"query": "query: ", "passage": "passage: "})
    assert m.prompts["query"] == "query: " and m.policy.source == "user"


def test_empty_and_whitespace_strings_are_defined_unit_vectors(e5):
    out = e5.encode(["", " ", "\n\t"])
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-5)
    # whitespace tokenizes to nothing, so all three equal the empty string's embedding
    np.testing.assert_allclose(out[1], out[0], atol=1e-6)
    np.testing.assert_allclose(out[2], out[0], atol=1e-6)


@pytest.mark.parametrize("bad, msg", [
    (["ok", 3], "index 1 is int"), (["ok", None], "index 1 is NoneType"), ([b"bytes"], "index 0 is bytes"),
    (None, "got NoneType"), (42, "got int"), ({"text": "x"}, "got dict"), (b"raw", "got bytes"),
])
def test_wrong_types_raise_typeerror_naming_the_index(e5, bad, msg):
    with pytest.raises(TypeError, match=msg):
        e5.encode(bad)


def test_bad_passage_items(e5):
    with pytest.raises(TypeError, match="index 1"):
        e5.encode_passages(["fine", {"title": "no text"}])
    with pytest.raises(TypeError):
        e5.encode_passages(17)


def test_bad_prompt_arguments(e5):
    with pytest.raises(ValueError, match="not one of"):
        e5.encode(["x"], prompt_name="document")
    with pytest.raises(ValueError, match="either prefix"):
        e5.encode(["x"], prefix="a", prompt_name="query")
    with pytest.raises(TypeError, match="prefix must be a str"):
        e5.encode(["x"], prefix=5)


def test_huge_input_is_truncated_and_reported(e5, caplog):
    huge = "protein " * 200_000  # ~1.6 MB, far beyond the 64-token limit of the tiny model
    with caplog.at_level(logging.WARNING, logger="e5kit"):
        out = e5.encode([huge, "short"])
    assert out.shape == (2, e5.dim) and np.isfinite(out).all()
    assert e5.last_stats.truncated == 1
    assert "1 of 2 inputs were longer than 64 tokens" in caplog.text


def test_no_truncation_no_warning(e5, caplog):
    with caplog.at_level(logging.WARNING, logger="e5kit"):
        e5.encode(["short"])
    assert "truncated" not in caplog.text and e5.last_stats.truncated == 0


def test_similarity_is_cosine_matrix(e5):
    a, b = e5.encode(["water", "fire", "earth"]), e5.encode(["light", "dark"])
    sim = e5.similarity(a, b)
    assert sim.shape == (3, 2)
    np.testing.assert_allclose(sim, a @ b.T, atol=1e-6)
    np.testing.assert_allclose(E5.similarity(a * 3, b), sim, atol=1e-6)  # unnormalized inputs are normalized
    assert E5.similarity(a[0], b[0]).shape == (1, 1)
    with pytest.raises(ValueError, match="equal d"):
        E5.similarity(a, np.ones((2, 5)))


def test_iter_encode_streams_equal_results(e5):
    texts = [f"text number {i}" for i in range(50)]
    chunks = list(e5.iter_encode(iter(texts), prompt_name="query", chunk_size=16))
    assert [len(c) for c in chunks] == [16, 16, 16, 2]
    np.testing.assert_allclose(np.concatenate(chunks), e5.encode_queries(texts), atol=1e-6)
    with pytest.raises(TypeError, match="index 2"):
        list(e5.iter_encode(["a", "b", 3]))


def test_count_tokens_includes_prefix_and_special_tokens(e5):
    ids = e5.engine.tokenizer(["water protein cells"]).ids[0]
    unk = e5.engine.tokenizer.hf.unk_token_id
    assert unk not in ids and len(ids) == 5  # [CLS] water protein cells [SEP]: real words, not [UNK]
    n_plain = e5.count_tokens(["water"])[0]
    n_query = e5.count_tokens(["water"], prompt_name="query")[0]
    assert n_plain == 3 and n_query > n_plain  # [CLS] water [SEP]; the prefix adds tokens
    assert e5.count_tokens(["protein " * 1000])[0] == e5.max_seq_length


def test_info_and_repr(e5):
    info = e5.info()
    assert info["dim"] == e5.dim and info["prompts"] == e5.prompts and info["precision"] == "fp32"
    assert "e5-small-unsupervised" in repr(e5)
    assert len(e5.fingerprint) == 64
    assert info["attention"] == "sdpa"  # head size 8: no kernel takes it


def test_info_says_which_attention_runs(tmp_path):
    import torch

    from e5kit.model import native_attention
    from tests.conftest import make_tiny_bert

    path = make_tiny_bert(tmp_path, hidden=128)  # 4 heads of 32: a head size the native kernel takes
    m = E5(path, precision="bf16", device="cpu")
    assert m.info()["attention"] == ("native" if native_attention.status(torch.bfloat16) is None else "sdpa")
    fp32 = E5(path, precision="fp32", device="cpu")
    assert fp32.info()["attention"] == ("native" if native_attention.status(torch.float32) is None else "sdpa")
    from e5kit.model.encoder import TransformerEncoder

    enc = m.engine.encoder
    for backend, want in (("hf", "sdpa"), ("jagged", "sdpa-jagged")):
        other = TransformerEncoder(enc.model, enc.pad_id, "mean", enc.device, enc.dtype, backend=backend)
        assert other.attention() == want


def test_max_seq_length_validation(tiny_e5):
    assert E5(tiny_e5, max_seq_length=16).max_seq_length == 16
    for bad in (0, 1, 65, "10", 3.5):
        with pytest.raises(ValueError, match="max_seq_length"):
            E5(tiny_e5, max_seq_length=bad)


@pytest.mark.parametrize("kwargs, msg", [
    ({"precision": "fp8"}, "not one of"), ({"precision": "fp16", "device": "cpu"}, "for GPUs"),
    ({"device": "nonsense"}, "not a torch device"), ({"max_tokens_per_batch": 0}, "positive int"),
])
def test_bad_constructor_arguments(tiny_e5, kwargs, msg):
    with pytest.raises(ValueError, match=msg):
        E5(tiny_e5, **kwargs)


# Issue 13 item 14: public arguments are type-checked, at the call, before any work.
@pytest.mark.parametrize("bad", ["no", "false", 0, 1, None, [True]])
def test_i13_normalize_must_be_a_bool(e5, bad):
    with pytest.raises(TypeError, match="normalize must be True or False"):
        e5.encode(["x"], normalize=bad)
    with pytest.raises(TypeError, match="normalize must be True or False"):
        e5.iter_encode(["x"], normalize=bad)  # checked at the call, not when the stream is first read
    with pytest.raises(TypeError, match="normalize must be True or False"):
        e5.embed_token_ids([[1, 2]], normalize=bad)


def test_i13_normalize_false_still_works(e5):
    raw = e5.encode(["a long enough text"], normalize=False)
    assert not np.isclose(np.linalg.norm(raw), 1.0)
    assert np.isclose(np.linalg.norm(e5.encode(["a long enough text"], normalize=np.bool_(True))), 1.0)


@pytest.mark.parametrize("prompts, msg", [
    ({"query": 5}, "str roles to str prefixes"), ({1: "q: "}, "str roles to str prefixes"),
    (["query: "], "must be a dict"), ("query: ", "must be a dict"),
])
def test_i13_prompts_are_type_checked_at_load(tiny_e5, prompts, msg):
    with pytest.raises(TypeError, match=msg):
        E5(tiny_e5, prompts=prompts)


@pytest.mark.parametrize("kwargs", [
    {"max_tokens_per_batch": "4096"}, {"max_tokens_per_batch": 2.5}, {"max_seq_length": True},
])
def test_i13_constructor_numbers_are_type_checked(tiny_e5, kwargs):
    with pytest.raises((TypeError, ValueError), match="int"):
        E5(tiny_e5, **kwargs)


def test_i13_other_flags_and_stream_arguments(e5, tmp_path):
    with pytest.raises(TypeError, match="show_progress"):
        e5.encode(["x"], show_progress="yes")
    with pytest.raises(TypeError, match="truncate"):
        e5.count_tokens(["x"], truncate="no")
    with pytest.raises(TypeError, match="chunk_size"):
        e5.iter_encode(["x"], chunk_size="10")
    with pytest.raises(TypeError, match="iterable of str"):
        e5.iter_encode("one string")
    with pytest.raises(TypeError, match="overwrite"):
        e5.save(tmp_path / "out", overwrite="yes")
    with pytest.raises(TypeError, match="folder"):
        e5.save(123)
    assert not (tmp_path / "out").exists()


# Issue 13 item 6 (API half): a lone surrogate is named by its index, not a tokenizer TypeError.
def test_i13_lone_surrogate_is_a_valueerror_naming_the_index(e5):
    with pytest.raises(ValueError, match=r"text at index 1: contains a lone surrogate '\\ud800' at character 1"):
        e5.encode(["ok", "a\ud800b"])
    with pytest.raises(ValueError, match="text at index 0: contains a lone surrogate"):
        e5.encode_passages([{"title": "t", "text": "\udfff"}])
    with pytest.raises(ValueError, match="text at index 2"):
        list(e5.iter_encode(iter(["a", "b", "\ud800"])))
    assert e5.encode(["café 中文 🙂 عربى"]).shape == (1, e5.dim)
