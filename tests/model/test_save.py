"""E5.save writes a layout sentence-transformers loads with the same vectors, and the reverse."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from e5kit import E5
from tests.texts import mixed_texts


def test_save_layout_has_everything_inference_needs(tiny_e5, tmp_path):
    out = E5(tiny_e5).save(tmp_path / "saved")
    names = {p.relative_to(out).as_posix() for p in out.rglob("*")}
    for required in ("config.json", "model.safetensors", "modules.json", "sentence_bert_config.json",
                     "1_Pooling/config.json", "config_sentence_transformers.json", "tokenizer.json"):
        assert required in names
    st_cfg = json.loads((out / "config_sentence_transformers.json").read_text())
    assert st_cfg["prompts"] == {"query": "query: ", "passage": "passage: "}
    assert json.loads((out / "1_Pooling/config.json").read_text())["pooling_mode_mean_tokens"] is True
    assert not list(tmp_path.glob(".saved.*"))  # the temp folder was renamed, nothing left behind


def test_sentence_transformers_reproduces_e5_vectors(tiny_e5, tmp_path):
    from sentence_transformers import SentenceTransformer

    e5 = E5(tiny_e5)
    folder = e5.save(tmp_path / "saved")
    st = SentenceTransformer(str(folder), device="cpu")
    # sentence-transformers adds a prompt even when the text carries it already; e5kit never doubles it
    texts = [t for t in mixed_texts(60, seed=3) if not t.startswith(("query:", "passage:"))]
    q_st = st.encode(texts, prompt_name="query", convert_to_numpy=True)
    p_st = st.encode(texts, prompt_name="passage", convert_to_numpy=True)
    assert np.abs(q_st - e5.encode_queries(texts)).max() <= 1e-5
    assert np.abs(p_st - e5.encode_passages(texts)).max() <= 1e-5
    reloaded = E5(folder)  # prompts now come from the saved checkpoint itself
    assert reloaded.prompts == e5.prompts and reloaded.policy.source == "checkpoint"
    assert np.abs(reloaded.encode_queries(texts) - e5.encode_queries(texts)).max() <= 1e-6
    already = st.encode(["how much protein"], prompt_name="query", convert_to_numpy=True)
    assert np.abs(e5.encode_queries(["query: how much protein"]) - already).max() <= 1e-5


@pytest.mark.slow
def test_model_saved_by_sentence_transformers_loads_with_same_vectors(minilm_path, tmp_path):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm_path), device="cpu")
    folder = tmp_path / "st-saved"
    st.save(str(folder))
    texts = mixed_texts(60, seed=4)
    e5 = E5(folder)
    assert e5.max_seq_length == 256 and e5.prompts == {}
    assert np.abs(e5.encode(texts) - st.encode(texts, convert_to_numpy=True)).max() <= 1e-5


def test_save_refuses_a_non_empty_folder_and_a_file(tiny_e5, tmp_path):
    """Issue 13.1: saving never deletes what the user did not ask to."""
    e5 = E5(tiny_e5)
    target = tmp_path / "saved"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    (target / "sub").mkdir()
    (target / "sub" / "data.bin").write_bytes(b"x")
    with pytest.raises(FileExistsError, match="not empty.*overwrite=True"):
        e5.save(target)
    assert sorted(p.name for p in target.rglob("*")) == ["data.bin", "notes.txt", "sub"]
    a_file = tmp_path / "x.txt"
    a_file.write_text("keep")
    with pytest.raises(FileExistsError, match="is a file"):
        e5.save(a_file)
    assert a_file.read_text() == "keep"


def test_save_overwrite_replaces_only_checkpoint_files(tiny_e5, tmp_path):
    e5 = E5(tiny_e5)
    target = e5.save(tmp_path / "saved")
    (target / "notes.txt").write_text("mine")
    (target / "config_sentence_transformers.json").write_text("{}")  # a stale file of ours
    e5.save(target, overwrite=True)
    assert (target / "notes.txt").read_text() == "mine"
    assert json.loads((target / "config_sentence_transformers.json").read_text())["prompts"] == e5.prompts
    assert not list(tmp_path.glob(".*tmp"))
    np.testing.assert_allclose(E5(target).encode(["a b"]), e5.encode(["a b"]), atol=1e-6)


def test_saved_files_follow_the_umask(tiny_e5, tmp_path):
    """Issue 13.28: another user or a service can read a saved model (0644 under umask 022)."""
    import os

    old = os.umask(0o022)
    try:
        folder = E5(tiny_e5).save(tmp_path / "saved")
    finally:
        os.umask(old)
    for path in folder.rglob("*"):
        if path.is_file():
            assert path.stat().st_mode & 0o044 == 0o044, f"{path.name} is {oct(path.stat().st_mode)}"


# -- issue 15 item 5: the other architectures of the family ---------------------------------------------------
def test_xlmr_save_loads_in_sentence_transformers_with_equal_vectors(tiny_xlmr, tmp_path):
    from sentence_transformers import SentenceTransformer

    from tests.model.tiny_family import family_texts

    e5 = E5(tiny_xlmr)
    folder = e5.save(tmp_path / "saved-xlmr")
    assert json.loads((folder / "1_Pooling/config.json").read_text())["pooling_mode_mean_tokens"] is True
    st = SentenceTransformer(str(folder), device="cpu")
    texts = [t for t in family_texts(80, seed=5) if not t.startswith(("query:", "passage:"))]
    q_diff = np.abs(st.encode(texts, prompt_name="query") - e5.encode_queries(texts)).max()
    p_diff = np.abs(st.encode(texts, prompt_name="passage") - e5.encode_passages(texts)).max()
    print(f"XLM-R saved -> sentence-transformers: max |diff| query {q_diff:.2e}, passage {p_diff:.2e}")
    assert q_diff <= 1e-5 and p_diff <= 1e-5
    again = E5(folder)
    assert again.checkpoint.model_type == "xlm-roberta" and again.engine.encoder.backend == "packed"
    assert np.abs(again.encode_queries(texts) - e5.encode_queries(texts)).max() <= 1e-6


def test_mistral_save_keeps_last_token_pooling_and_eos(tiny_mistral, tmp_path):
    from sentence_transformers import SentenceTransformer

    from tests.model.tiny_family import family_texts

    e5 = E5(tiny_mistral)
    folder = e5.save(tmp_path / "saved-mistral")
    pooling = json.loads((folder / "1_Pooling/config.json").read_text())
    assert pooling["pooling_mode_lasttoken"] is True and pooling["pooling_mode_mean_tokens"] is False
    st = SentenceTransformer(str(folder), device="cpu")
    texts = family_texts(80, seed=6)
    diff = np.abs(st.encode(texts) - e5.encode(texts)).max()
    print(f"Mistral saved -> sentence-transformers: max |diff| {diff:.2e}")
    assert diff <= 1e-5  # the saved tokenizer appends EOS itself, so sentence-transformers gets the same ids
    eos = st.tokenizer.eos_token_id
    assert st.tokenize(["protein"])["input_ids"][0, -1].item() == eos
    again = E5(folder)
    assert again.checkpoint.pooling == "last"
    assert np.abs(again.encode(texts) - e5.encode(texts)).max() <= 1e-6


def _st_folder(path, pooling_mode: str, out):
    """A sentence-transformers folder made by sentence-transformers itself from a plain HF checkpoint."""
    from sentence_transformers import SentenceTransformer, models

    word = models.Transformer(str(path), max_seq_length=48)
    pool = models.Pooling(word.get_word_embedding_dimension(), pooling_mode=pooling_mode)
    st = SentenceTransformer(modules=[word, pool, models.Normalize()], device="cpu")
    st.save(str(out))
    return SentenceTransformer(str(out), device="cpu")


def test_sentence_transformers_folders_of_each_family_load(tiny_xlmr, tiny_mistral, tmp_path):
    from tests.model.tiny_family import family_texts

    texts = family_texts(60, seed=7)
    st = _st_folder(tiny_xlmr, "mean", tmp_path / "st-xlmr")
    e5 = E5(tmp_path / "st-xlmr")
    assert e5.max_seq_length == 48 and e5.checkpoint.pooling == "mean"
    assert np.abs(e5.encode(texts) - st.encode(texts)).max() <= 1e-5
    # e5-mistral's own folder ends every text with EOS in its tokenizer; e5kit reads that folder the same way
    eos_tok = tmp_path / "mistral-eos"
    shutil.copytree(tiny_mistral, eos_tok)
    E5(tiny_mistral).engine.tokenizer.hf.save_pretrained(eos_tok)  # the tokenizer with EOS in its template
    st = _st_folder(eos_tok, "lasttoken", tmp_path / "st-mistral")
    e5 = E5(tmp_path / "st-mistral")
    assert e5.checkpoint.pooling == "last" and e5.max_seq_length == 48
    diff = np.abs(e5.encode(texts) - st.encode(texts)).max()
    print(f"sentence-transformers Mistral folder -> e5kit: max |diff| {diff:.2e}")
    assert diff <= 1e-5
