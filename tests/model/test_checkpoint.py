"""Loading: both layouts, the hub path offline, and every broken checkpoint ends in one clear error."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest
import torch

from e5kit import E5
from e5kit.errors import ModelLoadError
from e5kit.model.checkpoint import read_checkpoint, resolve


@pytest.fixture
def broken(tiny_bert, tmp_path):
    """A fresh copy of the tiny checkpoint to damage."""
    return shutil.copytree(tiny_bert, tmp_path / "broken-model")


def test_hf_layout_reads_limits_from_config(tiny_bert):
    ckpt = read_checkpoint(tiny_bert)
    assert ckpt.model_type == "bert" and ckpt.max_seq_length == 64 and ckpt.weights_file == "model.safetensors"
    assert ckpt.pooling == "mean" and ckpt.stored_prompts == {} and ckpt.revision is None


def test_hub_id_offline_without_cache_is_one_clear_error(monkeypatch, tmp_path):
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(ModelLoadError) as err:
        E5("intfloat/e5-base-unsupervised")
    msg = str(err.value)
    assert "intfloat/e5-base-unsupervised" in msg and "local folder" in msg and "\n" not in msg


def test_hub_id_is_served_from_the_cache_offline(monkeypatch, tmp_path, tiny_e5):
    """A model in the huggingface_hub cache layout loads offline, and its revision is recorded."""
    cache = tmp_path / "hub"
    snap = cache / "models--intfloat--e5-small-unsupervised" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_e5, snap)
    (cache / "models--intfloat--e5-small-unsupervised" / "refs").mkdir()
    (cache / "models--intfloat--e5-small-unsupervised" / "refs" / "main").write_text("a" * 40)
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)  # read at import, so patch the constants
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    m = E5("intfloat/e5-small-unsupervised")
    assert m.revision == "a" * 40 and m.prompts == {"query": "query: ", "passage": "passage: "}
    np.testing.assert_allclose(m.encode(["x"]), E5(tiny_e5).encode(["x"]), atol=1e-7)


@pytest.mark.parametrize("name", ["not/a/hub/id", "./missing-folder", "/no/such/path"])
def test_missing_paths_and_bad_ids(name):
    with pytest.raises(ModelLoadError, match="no such folder"):
        resolve(name)


def test_a_file_instead_of_a_folder(tmp_path):
    f = tmp_path / "model.safetensors"
    f.write_bytes(b"x")
    with pytest.raises(ModelLoadError, match="is a file"):
        E5(f)


def test_missing_config(broken):
    (broken / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="no config.json"):
        E5(broken)


def test_corrupt_config(broken):
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json is unreadable or not JSON"):
        E5(broken)


def test_non_bert_family_config(broken):
    cfg = json.loads((broken / "config.json").read_text())
    cfg["model_type"] = "gpt2"
    (broken / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelLoadError, match="'gpt2', not a BERT-family encoder"):
        E5(broken)


def test_missing_weights(broken):
    (broken / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="no weights"):
        E5(broken)


def test_corrupt_weights(broken):
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    with pytest.raises(ModelLoadError, match="could not be loaded") as err:
        E5(broken)
    assert "broken-model" in str(err.value)


def test_truncated_weights(broken):
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match="could not be loaded"):
        E5(broken)


def test_missing_tokenizer(broken):
    for f in ("vocab.txt", "tokenizer.json"):
        (broken / f).unlink(missing_ok=True)
    with pytest.raises(ModelLoadError, match="no tokenizer files"):
        E5(broken)


def test_pickle_weights_load_safely_and_say_so(broken, caplog):
    from safetensors.torch import load_file

    state = load_file(broken / "model.safetensors")
    (broken / "model.safetensors").unlink()
    torch.save(state, broken / "pytorch_model.bin")
    with caplog.at_level(logging.WARNING):
        m = E5(broken)
    assert "weights_only=True" in caplog.text
    assert m.encode(["x"]).shape == (1, m.dim)


class _Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_malicious_pickle_is_refused(broken, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (broken / "model.safetensors").unlink()
    torch.save({"weights": _Exploit()}, broken / "pytorch_model.bin")
    with pytest.raises(ModelLoadError):
        E5(broken)
    assert not (tmp_path / "PWNED").exists()


def test_sentence_transformers_max_seq_length_and_prompts(broken):
    (broken / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 20}))
    (broken / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
    ]))
    (broken / "config_sentence_transformers.json").write_text(json.dumps({"prompts": {"query": "Q: "}}))
    ckpt = read_checkpoint(broken)
    assert ckpt.max_seq_length == 20 and ckpt.stored_prompts == {"query": "Q: "} and ckpt.normalize is False
    m = E5(broken)
    assert m.prompts == {"query": "Q: "} and m.policy.source == "checkpoint"
    # without a Normalize module sentence-transformers would not normalize; E5 normalizes unless told not to
    assert np.isclose(np.linalg.norm(m.encode(["x"])[0]), 1.0)


def test_max_seq_length_above_positions_is_capped(broken):
    (broken / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 4096}))
    (broken / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"}]))
    assert read_checkpoint(broken).max_seq_length == 64


# Issue 13 item 25: a relative path that does not exist is not sent to the hub; local folders get local advice.
def test_i13_missing_relative_path_under_an_existing_folder_is_not_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path)

    def no_hub(*a, **k):
        raise AssertionError("the hub was asked for a local path")

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "snapshot_download", no_hub)
    with pytest.raises(ModelLoadError, match="no such folder") as err:
        resolve("models/e5-base")  # of the form org/name, but ./models is a folder here: a typo, not a hub id
    assert str(tmp_path / "models" / "e5-base") in str(err.value)
    with pytest.raises(ModelLoadError, match="no such folder"):
        resolve(tmp_path / "models" / "missing")  # a Path object is never a hub id


@pytest.mark.parametrize("name", ["e5..base/x", "org/name/", "models\\e5", "org/-name"])
def test_i13_names_that_cannot_be_hub_ids(name):
    with pytest.raises(ModelLoadError, match="no such folder"):
        resolve(name)


def test_i13_hub_failure_says_which_local_path_was_tried(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from huggingface_hub import constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelLoadError, match="no local folder") as err:
        resolve("someorg/some-model")
    assert str(tmp_path / "someorg" / "some-model") in str(err.value)


def test_i13_broken_local_folder_gets_layout_advice_not_use_a_local_folder(broken):
    (broken / "config.json").unlink()
    with pytest.raises(ModelLoadError) as err:
        read_checkpoint(broken)
    assert "Pass a local folder instead" not in str(err.value)
    assert "A model folder holds config.json" in str(err.value)


@pytest.mark.parametrize("bad", [None, 5, b"org/name"])
def test_i13_model_of_the_wrong_type(bad):
    with pytest.raises(TypeError, match="model must be a str or a path"):
        resolve(bad)


def test_i13_empty_model_name():
    with pytest.raises(ModelLoadError, match="empty"):
        resolve("  ")
    with pytest.raises(ModelLoadError, match="empty"):
        resolve("")
