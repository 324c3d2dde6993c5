"""Issue 15 item 1: XLM-RoBERTa (multilingual-e5) and Mistral (e5-mistral) load and equal their model cards'
reference code in fp32; unsupported architectures and checkpoint code are refused with the reason."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoTokenizer

from e5kit import E5
from e5kit.errors import ModelLoadError
from tests.model.test_exactness import reference_embeddings
from tests.model.tiny_family import family_texts


def card_last_token_pool(last_hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """e5-mistral-7b-instruct's model card pooling: column -1 under left padding, else length - 1."""
    left_padding = attention_mask[:, -1].sum() == attention_mask.shape[0]
    if left_padding:
        return last_hidden_states[:, -1]
    lengths = attention_mask.sum(dim=1) - 1
    return last_hidden_states[torch.arange(last_hidden_states.shape[0]), lengths]


def mistral_card_embeddings(path, texts: list[str], max_length: int, padding_side: str,
                            batch_size: int = 16) -> np.ndarray:
    """The e5-mistral card's code: tokenize to max_length - 1, append EOS, pad, last-token pool, normalize."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.padding_side = padding_side
    model = AutoModel.from_pretrained(path).eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start:start + batch_size], max_length=max_length - 1, return_attention_mask=False,
                          padding=False, truncation=True)
        batch["input_ids"] = [ids + [tokenizer.eos_token_id] for ids in batch["input_ids"]]
        batch = tokenizer.pad(batch, padding=True, return_attention_mask=True, return_tensors="pt")
        with torch.no_grad():
            last = model(**batch).last_hidden_state
        out.append(F.normalize(card_last_token_pool(last, batch["attention_mask"]), p=2, dim=1).numpy())
    return np.concatenate(out)


def test_xlmr_matches_the_multilingual_e5_card(tiny_xlmr):
    texts = family_texts(220)
    e5 = E5(tiny_xlmr)
    assert e5.engine.encoder.backend == "packed"  # the fast path, not transformers' model
    assert e5.prompts == {"query": "query: ", "passage": "passage: "}  # multilingual-e5 by its folder name
    got = e5.encode(texts)
    expected = reference_embeddings(tiny_xlmr, texts, e5.max_seq_length)
    diff = float(np.abs(got - expected).max())
    print(f"tiny XLM-R (packed) max |diff| = {diff:.2e} over {len(texts)} texts")
    assert got.shape == (len(texts), 32) and diff <= 1e-5
    assert e5.last_stats.truncated > 0
    info = e5.info()
    assert (info["architecture"], info["model_type"], info["pooling"], info["dim"]) == (
        "XLMRobertaModel", "xlm-roberta", "mean", 32)
    unk = e5.engine.tokenizer.hf.unk_token_id  # the tokenizer really splits Arabic and CJK, not into <unk>
    ids = e5.tokenize(["مرحبا بالعالم", "中文 字符 蛋白质"]).ids
    assert all(unk not in row for row in ids)


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_mistral_matches_the_e5_mistral_card(tiny_mistral, padding_side):
    texts = family_texts(220, seed=1)
    e5 = E5(tiny_mistral)
    assert e5.engine.encoder.backend == "hf" and e5.checkpoint.pooling == "last"
    got = e5.encode(texts)
    expected = mistral_card_embeddings(tiny_mistral, texts, e5.max_seq_length, padding_side)
    diff = float(np.abs(got - expected).max())
    print(f"tiny Mistral (card padding {padding_side}) max |diff| = {diff:.2e} over {len(texts)} texts")
    assert got.shape == (len(texts), 32) and diff <= 1e-5
    assert e5.last_stats.truncated > 0
    eos = e5.engine.tokenizer.hf.eos_token_id
    rows = e5.tokenize(["", "protein", "مرحبا " * 200]).ids
    assert all(row[-1] == eos for row in rows) and len(rows[2]) == e5.max_seq_length  # EOS survives truncation
    assert e5.tokenize_ids([[7, 8]]).ids[0][-1] == eos  # token-id framing appends it too


def test_info_estimates_memory(tiny_mistral):
    e5 = E5(tiny_mistral, max_tokens_per_batch=1024)
    info = e5.info()
    params = sum(p.numel() for p in e5.engine.encoder.model.parameters())
    assert (info["architecture"], info["pooling"], info["backend"], info["parameters"]) == (
        "MistralModel", "last", "hf", params)
    assert abs(info["weights_mb"] - params * 4 / 2**20) < 0.01  # fp32 weights, no packed copies for a decoder
    assert info["activations_mb"] == round(1024 * (64 + 5 * 32) * 4 / 2**20, 3)  # one batch's FFN + residual + QKV
    assert info["memory_estimate_mb"] == pytest.approx(info["weights_mb"] + info["activations_mb"], abs=2e-3)
    half = E5(tiny_mistral, precision="bf16", max_tokens_per_batch=1024).info()
    assert half["weights_mb"] == pytest.approx(info["weights_mb"] / 2, abs=2e-3)


def test_decoder_on_cpu_says_it_is_slow(tiny_mistral, caplog):
    from e5kit.model import encoder

    encoder._WARNED_SLOW.clear()
    with caplog.at_level("WARNING"):
        E5(tiny_mistral)
        E5(tiny_mistral)
    slow = [r for r in caplog.records if "runs on CPU: this works but is slow" in r.getMessage()]
    assert len(slow) == 1  # once per process, not per load


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


def _edit_config(folder, **changes):
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(changes)
    (folder / "config.json").write_text(json.dumps(cfg))


def test_unsupported_decoder_names_the_supported_architectures(tiny_mistral, tmp_path):
    folder = _copy(tiny_mistral, tmp_path / "llm")
    _edit_config(folder, model_type="gpt_neox")
    with pytest.raises(ModelLoadError, match="'gpt_neox', which e5kit does not support") as err:
        E5(folder)
    assert "xlm-roberta" in str(err.value) and "mistral" in str(err.value)


REMOTE_CODE = '''
from transformers import BertModel

LOADED = []


class CustomEncoder(BertModel):
    """Stands for code a checkpoint ships; records that it ran."""

    def __init__(self, config, *args, **kwargs):
        LOADED.append(type(self).__name__)
        super().__init__(config, *args, **kwargs)
'''


def test_checkpoint_code_is_refused_unless_trusted(tiny_e5, tmp_path):
    folder = _copy(tiny_e5, tmp_path / "custom-e5")
    (folder / "modeling_custom.py").write_text(REMOTE_CODE)
    _edit_config(folder, auto_map={"AutoModel": "modeling_custom.CustomEncoder"})
    with pytest.raises(ModelLoadError, match="needs trust_remote_code: its config.json maps AutoModel") as err:
        E5(folder)
    assert "--trust-remote-code" in str(err.value) and "would run that code" in str(err.value)
    with pytest.raises(TypeError, match="trust_remote_code must be True or False"):
        E5(folder, trust_remote_code="yes")
    trusted = E5(folder, trust_remote_code=True)
    assert type(trusted.engine.encoder.model).__name__ == "CustomEncoder"
    plain = E5(tiny_e5)
    texts = ["protein", "what is water", ""]
    np.testing.assert_allclose(trusted.encode(texts), plain.encode(texts), atol=1e-6)  # same weights


def test_tokenizer_code_is_refused_too(tiny_e5, tmp_path):
    folder = _copy(tiny_e5, tmp_path / "custom-tok")
    tok_cfg = json.loads((folder / "tokenizer_config.json").read_text())
    tok_cfg["auto_map"] = {"AutoTokenizer": ["tok.Slow", "tok.Fast"]}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_cfg))
    with pytest.raises(ModelLoadError, match="tokenizer_config.json maps AutoTokenizer"):
        E5(folder)


def test_cli_flag_reaches_the_model(tiny_e5):
    import argparse

    from e5kit.cli.common import add_model_args, model_kwargs

    p = argparse.ArgumentParser()
    add_model_args(p)
    assert model_kwargs(p.parse_args(["--trust-remote-code"]))["trust_remote_code"] is True
    assert "trust_remote_code" not in model_kwargs(p.parse_args([]))  # E5's default (False) applies
