"""Real clients, as users call them, against a live server on loopback: openai, LangChain, LlamaIndex,
huggingface_hub.

For every client with its default settings (only the address changed): the vectors equal the Python API
(<= 1e-5) for the role asked (the server's default, query, when the client cannot say), or the answer is a
4xx whose message names the fix; never a 200 with a wrong vector. The role recipes of docs/serve.md are
run from the page itself, so the documentation cannot drift from what works.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.serve.conftest import start_server

TEXTS = ["how much protein should a female eat", "Water and FIRE, earth!", "", "café 中文 🙂",
         "passage: already marked", "line one\nline two"]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "serve.md"


def doc_recipe(name: str, url: str) -> dict:
    """Run the code block after `<!-- tested: name -->` in docs/serve.md with the test server's address."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(rf"<!-- tested: {re.escape(name)} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"docs/serve.md has no recipe {name!r}"
    namespace: dict = {}
    exec(compile(match.group(1).replace("http://127.0.0.1:8080", url), str(DOCS), "exec"), namespace)  # noqa: S102
    return namespace


def close(got, want) -> float:
    got = np.asarray(got, dtype=np.float32)
    np.testing.assert_allclose(got, want, atol=1e-5)
    return float(np.abs(got - want).max())


@pytest.fixture(scope="module")
def offline_server(e5_model):
    """A server where tiktoken's cl100k_base file cannot be had (as on an offline machine)."""
    from e5kit.serve import BackgroundServer, ServeConfig, create_app
    from e5kit.serve.token_ids import Cl100kDecoder

    def unavailable():
        raise OSError("no network")

    cfg = ServeConfig(port=0)
    app = create_app(e5_model, cfg)
    app.app.state.backend.decoder = Cl100kDecoder(loader=unavailable)  # before the app starts loading
    with BackgroundServer(app, cfg) as srv:
        yield srv


# -- openai ------------------------------------------------------------------------------------------------
def test_openai_defaults(server, e5_model):
    import openai

    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    resp = client.embeddings.create(model="text-embedding-3-small", input=TEXTS)  # base64 by default
    close([d.embedding for d in resp.data], e5_model.encode_queries(TEXTS))
    docs = client.embeddings.create(model="e5", input=TEXTS, extra_body={"input_type": "passage"})
    close([d.embedding for d in docs.data], e5_model.encode_passages(TEXTS))


# -- LangChain ---------------------------------------------------------------------------------------------
def test_langchain_defaults_send_cl100k_ids_and_get_the_query_vectors(server, e5_model, cl100k):
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(model="e5", base_url=server.url + "/v1", api_key="unused", max_retries=0)
    close([emb.embed_query(TEXTS[0])], e5_model.encode_queries(TEXTS[:1]))  # once 200 with a wrong vector
    close(emb.embed_documents(TEXTS), e5_model.encode_queries(TEXTS))  # no role said: the server's default
    raw = OpenAIEmbeddings(model="e5", base_url=server.url + "/v1", api_key="unused", max_retries=0,
                           check_embedding_ctx_length=False)  # sends text instead of token ids
    close(raw.embed_documents(TEXTS), e5_model.encode_queries(TEXTS))


def test_langchain_roles_recipe_from_the_docs(server, e5_model, cl100k):
    ns = doc_recipe("langchain-roles", server.url)
    emb = ns["embeddings"]
    close(emb.embed_documents(TEXTS), e5_model.encode_passages(TEXTS))
    close([emb.embed_query(TEXTS[0])], e5_model.encode_queries(TEXTS[:1]))
    import asyncio

    async def both():  # one event loop: the async client is bound to it
        return await emb.aembed_documents(TEXTS[:2]), await emb.aembed_query(TEXTS[1])

    docs, query = asyncio.run(both())
    close(docs, e5_model.encode_passages(TEXTS[:2]))
    close([query], e5_model.encode_queries(TEXTS[1:2]))
    per_instance = ns["documents"]  # model_kwargs={"extra_body": ...}: one role per instance
    close(per_instance.embed_documents(TEXTS[:3]), e5_model.encode_passages(TEXTS[:3]))


def test_langchain_where_cl100k_cannot_be_loaded_is_a_422_naming_the_fix(offline_server, e5_model, cl100k):
    import openai
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(model="e5", base_url=offline_server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError, match="check_embedding_ctx_length=False") as info:
        emb.embed_query(TEXTS[0])
    assert "no network" in str(info.value) and "TIKTOKEN_CACHE_DIR" in str(info.value)
    fixed = OpenAIEmbeddings(model="e5", base_url=offline_server.url + "/v1", api_key="unused", max_retries=0,
                             check_embedding_ctx_length=False)
    close([fixed.embed_query(TEXTS[0])], e5_model.encode_queries(TEXTS[:1]))
    info_body = httpx.get(offline_server.url + "/info").json()
    assert info_body["cl100k"].startswith("unavailable: tiktoken could not load cl100k_base (OSError: no network")


def test_langchain_text_over_the_models_limit_is_413_naming_truncate(server, cl100k):
    import openai
    from langchain_openai import OpenAIEmbeddings

    emb = OpenAIEmbeddings(model="e5", base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError, match="send truncate=true") as info:
        emb.embed_documents(["water " * 100])
    assert info.value.status_code == 413


# -- LlamaIndex --------------------------------------------------------------------------------------------
def test_llamaindex_defaults(server, e5_model):
    from llama_index.embeddings.openai import OpenAIEmbedding

    emb = OpenAIEmbedding(api_base=server.url + "/v1", api_key="unused", max_retries=0)  # model ada-002
    close([emb.get_query_embedding(TEXTS[0])], e5_model.encode_queries(TEXTS[:1]))
    # LlamaIndex turns newlines into spaces, which BERT reads alike
    close(emb.get_text_embedding_batch(TEXTS), e5_model.encode_queries(TEXTS))
    named = OpenAIEmbedding(model_name="e5", api_base=server.url + "/v1", api_key="unused", max_retries=0)
    close([named.get_text_embedding(TEXTS[1])], e5_model.encode_queries(TEXTS[1:2]))


def test_llamaindex_roles_recipe_from_the_docs(server, e5_model):
    import asyncio

    emb = doc_recipe("llamaindex-roles", server.url)["embed_model"]
    close(emb.get_text_embedding_batch(TEXTS), e5_model.encode_passages(TEXTS))
    close([emb.get_text_embedding(TEXTS[0])], e5_model.encode_passages(TEXTS[:1]))
    close([emb.get_query_embedding(TEXTS[0])], e5_model.encode_queries(TEXTS[:1]))
    async def both():
        return await emb.aget_query_embedding(TEXTS[1]), await emb.aget_text_embedding_batch(TEXTS[:2])

    query, docs = asyncio.run(both())
    close([query], e5_model.encode_queries(TEXTS[1:2]))
    close(docs, e5_model.encode_passages(TEXTS[:2]))


# -- huggingface_hub (the TEI contract) --------------------------------------------------------------------
def test_huggingface_hub_inference_client(server, e5_model, monkeypatch):
    import huggingface_hub.constants
    from huggingface_hub import InferenceClient

    # the tests set HF_HUB_OFFLINE=1, which huggingface_hub applies even to a loopback URL
    monkeypatch.setattr(huggingface_hub.constants, "is_offline_mode", lambda: False)
    client = InferenceClient(model=server.url)
    close(client.feature_extraction(TEXTS[0]), e5_model.encode_queries(TEXTS[:1]))  # POST /
    close(client.feature_extraction(TEXTS[1], prompt_name="passage"), e5_model.encode_passages(TEXTS[1:2]))
    scores = client.sentence_similarity(TEXTS[0], other_sentences=TEXTS[1:4])  # POST / with a similarity body
    q = e5_model.encode_queries(TEXTS[:4])
    close(scores, q[1:] @ q[0])
    long = "water " * 40 + "fire " * 40
    right = client.feature_extraction(long, truncate=True, truncation_direction="right")
    close(right, e5_model.encode_queries([long]))
    left = client.feature_extraction(long, truncate=True, truncation_direction="Left")  # TEI's spelling
    # 64 tokens = [CLS] + "query: " (2) + the last 60 words + [SEP]: the prefix stays, the start goes
    close(left, e5_model.encode_queries([" ".join(long.split()[-60:])]))
    with pytest.raises(Exception, match="413|send truncate=true"):
        client.feature_extraction(long)


# -- several models ----------------------------------------------------------------------------------------
def test_several_models_routed_by_name(e5_model, serve_ckpt, cl100k):
    import openai
    from langchain_openai import OpenAIEmbeddings

    from e5kit import E5

    plain = E5(serve_ckpt, prompts={})  # the same weights without prompts: every vector differs
    with start_server({"e5": e5_model, "plain": plain}) as srv:
        models = httpx.get(srv.url + "/v1/models").json()
        assert [m["id"] for m in models["data"]] == ["e5", "plain"] and models["object"] == "list"
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        close([d.embedding for d in client.embeddings.create(model="plain", input=TEXTS).data], plain.encode(TEXTS))
        close([d.embedding for d in client.embeddings.create(model="e5", input=TEXTS).data],
              e5_model.encode_queries(TEXTS))
        emb = OpenAIEmbeddings(model="plain", base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        close(emb.embed_documents(TEXTS[:2]), plain.encode(TEXTS[:2]))
        with pytest.raises(openai.NotFoundError) as info:
            client.embeddings.create(model="text-embedding-3-small", input="x")
        err = info.value.body
        assert err["code"] == "model_not_found" and err["param"] == "model" and "['e5', 'plain']" in err["message"]
        r = httpx.post(srv.url + "/embed", json={"inputs": ["water"], "model": "plain"})
        close(r.json(), plain.encode(["water"]))
        assert httpx.post(srv.url + "/embed", json={"inputs": "water", "model": "nope"}).status_code == 404
        close(httpx.post(srv.url + "/", json={"inputs": "water"}).json(), e5_model.encode_queries(["water"]))
        assert httpx.get(srv.url + "/v1/models/plain").json()["id"] == "plain"
        missing = httpx.get(srv.url + "/v1/models/nope")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"
        assert [m["model"] for m in httpx.get(srv.url + "/info").json()["models"]] == ["e5", "plain"]


def test_one_model_accepts_any_name(server, e5_model):
    r = httpx.post(server.url + "/embeddings", json={"input": "water", "model": "whatever"})
    close([r.json()["data"][0]["embedding"]], e5_model.encode_queries(["water"]))
