"""A tiny E5 model and live servers on 127.0.0.1 (ephemeral ports), shared by the serve tests.

tiktoken's cl100k_base file (OpenAI clients send token ids in it) cannot be fetched here: the tests
point TIKTOKEN_CACHE_DIR at the copy the dev dependency llama-index-core ships (never committed here).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

API_KEY = "test-key-0123456789"


def shipped_tiktoken_cache() -> Path | None:
    """The folder of tiktoken encoding files inside llama-index-core, if installed."""
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "_static" / "tiktoken_cache"
    return folder if folder.is_dir() else None


if "TIKTOKEN_CACHE_DIR" not in os.environ and shipped_tiktoken_cache() is not None:
    os.environ["TIKTOKEN_CACHE_DIR"] = str(shipped_tiktoken_cache())


@pytest.fixture(scope="session")
def cl100k():
    """tiktoken's cl100k_base encoding, from the shipped copy."""
    tiktoken = pytest.importorskip("tiktoken", reason="tiktoken (serve extra) not installed")
    if shipped_tiktoken_cache() is None:
        pytest.skip("llama-index-core (dev dependency) not installed: no cl100k_base file offline")
    return tiktoken.get_encoding("cl100k_base")


@pytest.fixture(scope="session")
def serve_ckpt(tmp_path_factory):
    """A tiny E5-named checkpoint whose tokenizer knows its whole vocab.txt (token ids must differ)."""
    from transformers import AutoTokenizer, BertTokenizerFast

    from tests.conftest import make_tiny_bert

    folder = make_tiny_bert(tmp_path_factory.mktemp("serve-ckpt"), name="e5-small-unsupervised", seed=2)
    if len(AutoTokenizer.from_pretrained(folder)) < 100:  # transformers 5 dropped a vocab_file= vocabulary
        tok = BertTokenizerFast(vocab=str(folder / "vocab.txt"), do_lower_case=True, model_max_length=64)
        tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def e5_model(serve_ckpt):
    from e5kit import E5

    model = E5(serve_ckpt)
    assert len(model.engine.tokenizer.hf) > 100, "the tiny tokenizer lost its vocabulary"
    return model


def start_server(model, **config):
    from e5kit.serve import BackgroundServer, ServeConfig, create_app

    cfg = ServeConfig(port=0, **config)
    return BackgroundServer(create_app(model, cfg), cfg)


@pytest.fixture(scope="session")
def server(e5_model):
    """An open server with small limits so limit tests stay cheap."""
    with start_server(e5_model, max_request_inputs=64, max_body_bytes=200_000) as srv:
        yield srv


@pytest.fixture(scope="session")
def keyed_server(e5_model):
    with start_server(e5_model, api_key=API_KEY) as srv:
        yield srv
