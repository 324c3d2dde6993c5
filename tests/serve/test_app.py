"""The live server through the real OpenAI client and raw HTTP: results equal E5.encode_*, every endpoint."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import openai
import pytest

from tests.serve.conftest import API_KEY

TEXTS = ["what is protein", "", "Water and FIRE, earth!", "query: already prefixed", "café 中文 🙂",
         "the cell " * 10]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def vectors(resp) -> np.ndarray:
    """Rows of a response; explicit base64 stays a string in the client, so decode it here."""
    rows = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") if isinstance(d.embedding, str)
            else d.embedding for d in resp.data]
    return np.array(rows, dtype=np.float32)


@pytest.mark.parametrize("fmt", ["float", "base64", None])
def test_openai_client_equals_encode_queries_by_default(client, e5_model, fmt):
    kwargs = {"encoding_format": fmt} if fmt else {}  # None: the client asks for base64 and decodes it
    resp = client.embeddings.create(model="e5", input=TEXTS, **kwargs)
    np.testing.assert_allclose(vectors(resp), e5_model.encode_queries(TEXTS), atol=1e-5)
    assert [d.index for d in resp.data] == list(range(len(TEXTS)))
    assert resp.usage.prompt_tokens == resp.usage.total_tokens == sum(e5_model.count_tokens(TEXTS, prefix="query: "))
    assert resp.model == "e5-small-unsupervised"


@pytest.mark.parametrize("input_type", ["query", "passage", "none"])
def test_input_type_applies_the_e5_prefix(client, e5_model, input_type):
    resp = client.embeddings.create(model="e5", input=TEXTS, extra_body={"input_type": input_type})
    want = {"query": e5_model.encode_queries, "passage": e5_model.encode_passages,
            "none": e5_model.encode}[input_type](TEXTS)
    np.testing.assert_allclose(vectors(resp), want, atol=1e-5)


def test_single_string_and_cl100k_token_ids_equal_the_text(client, e5_model, cl100k):
    one = client.embeddings.create(model="e5", input="what is protein")
    np.testing.assert_allclose(vectors(one), e5_model.encode_queries(["what is protein"]), atol=1e-5)
    texts = ["what is protein", "Water and FIRE, earth!", "passage: already marked", "café 中文 🙂"]
    ids = [cl100k.encode_ordinary(t) for t in texts]  # what OpenAI clients (LangChain) send
    many = client.embeddings.create(model="e5", input=ids, extra_body={"input_type": "passage"})
    np.testing.assert_allclose(vectors(many), e5_model.encode_passages(texts), atol=1e-5)
    single = client.embeddings.create(model="e5", input=ids[0])
    np.testing.assert_allclose(vectors(single), e5_model.encode_queries(texts[:1]), atol=1e-5)
    assert single.usage.total_tokens == e5_model.count_tokens(texts[:1], prefix="query: ")[0]


def test_batch_budget_default_follows_the_device_and_an_explicit_one_wins(e5_model, monkeypatch):
    from e5kit.serve.config import ServeConfig
    from e5kit.serve.metrics import ServerMetrics
    from e5kit.serve.service import EmbeddingService

    def budget(config):
        return EmbeddingService(e5_model, "m", config, ServerMetrics(lambda: 0, lambda: 0)).batcher.max_batch_tokens

    assert budget(ServeConfig()) == 4096 and budget(ServeConfig(max_batch_tokens=512)) == 512
    monkeypatch.setattr(type(e5_model), "device_type", property(lambda self: "cuda"))
    assert budget(ServeConfig()) == 16384
    with pytest.raises(ValueError, match="max_batch_tokens must be a positive int"):
        ServeConfig(max_batch_tokens=0)


def test_model_vocabulary_ids_with_token_ids_model(e5_model):
    from tests.serve.conftest import start_server

    texts = ["what is protein", "water and fire"]
    ids = [e5_model.engine.tokenizer.hf(t, add_special_tokens=False)["input_ids"] for t in texts]
    with start_server(e5_model, token_ids="model") as srv:
        r = httpx.post(srv.url + "/v1/embeddings", json={"input": ids, "input_type": "passage"})
        np.testing.assert_allclose(np.array([d["embedding"] for d in r.json()["data"]]),
                                   e5_model.encode_passages(texts), atol=1e-5)
        bad = httpx.post(srv.url + "/v1/embeddings", json={"input": [[5, 999]]})
        assert bad.status_code == 422 and "input[0][1]: token id 999 is outside the model's vocabulary" in bad.text


def test_token_ids_reject_names_the_client_fix(e5_model):
    from tests.serve.conftest import start_server

    with start_server(e5_model, token_ids="reject") as srv:
        r = httpx.post(srv.url + "/v1/embeddings", json={"input": [[5, 6]]})
        assert httpx.post(srv.url + "/v1/embeddings", json={"input": ["text"]}).status_code == 200
    err = r.json()["error"]
    assert r.status_code == 422 and err["code"] == "token_ids_unavailable"
    assert "--token-ids reject" in err["message"] and "check_embedding_ctx_length=False" in err["message"]


def test_base64_is_little_endian_float32(server, e5_model):
    r = httpx.post(server.url + "/v1/embeddings", json={"input": ["water"], "encoding_format": "base64"})
    raw = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype="<f4")
    np.testing.assert_allclose(raw, e5_model.encode_queries(["water"])[0], atol=1e-5)


def test_dimensions_only_the_models_own(client, e5_model):
    ok = client.embeddings.create(model="e5", input="x", dimensions=e5_model.dim)
    assert len(ok.data[0].embedding) == e5_model.dim
    with pytest.raises(openai.UnprocessableEntityError, match="dimensions: Input should be 32"):
        client.embeddings.create(model="e5", input="x", dimensions=8)


def test_embed_tei_style(server, e5_model):
    r = httpx.post(server.url + "/embed", json={"inputs": TEXTS, "prompt_name": "passage"})
    np.testing.assert_allclose(np.array(r.json()), e5_model.encode_passages(TEXTS), atol=1e-5)
    raw = httpx.post(server.url + "/embed", json={"inputs": "water", "normalize": False, "prompt_name": "none"})
    np.testing.assert_allclose(np.array(raw.json()), e5_model.encode(["water"], normalize=False), atol=1e-5)
    long = httpx.post(server.url + "/embed", json={"inputs": ["water " * 100], "truncate": True})
    np.testing.assert_allclose(np.array(long.json()), e5_model.encode_queries(["water " * 100]), atol=1e-5)


def test_similarity(server, e5_model):
    body = {"inputs": {"source_sentence": "what is protein", "sentences": ["protein", "water", "what is protein"]}}
    r = httpx.post(server.url + "/similarity", json=body)
    q = e5_model.encode_queries(["what is protein", "protein", "water", "what is protein"])
    np.testing.assert_allclose(r.json(), q[1:] @ q[0], atol=1e-5)
    assert r.json()[2] == pytest.approx(1.0, abs=1e-5)


def test_health_ready_info_metrics(server, e5_model):
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.url + "/ready").status_code == 200
    info = httpx.get(server.url + "/info").json()
    assert info["dim"] == e5_model.dim and info["max_input_tokens"] == 64 and info["precision"] == "fp32"
    assert info["prompts"] == {"query": "query: ", "passage": "passage: "} and info["version"]
    assert "/" not in info["model"], "the server's file paths must not leak"
    assert info["max_batch_tokens"] == 4096  # no --max-batch-tokens: e5kit's CPU default
    httpx.post(server.url + "/embed", json={"inputs": ["a", "b"]})
    text = httpx.get(server.url + "/metrics").text
    for family in ("e5kit_requests_total", "e5kit_request_duration_seconds_bucket", "e5kit_batch_size_bucket",
                   "e5kit_tokens_per_second", "e5kit_queue_depth", "e5kit_tokens_total"):
        assert family in text
    assert 'e5kit_requests_total{endpoint="/embed",status="200"}' in text


def test_openapi_schema_lists_every_route_and_the_e5_fields(server):
    schema = httpx.get(server.url + "/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert {"/v1/embeddings", "/embeddings", "/", "/embed", "/similarity", "/v1/models", "/health", "/ready", "/info",
            "/metrics"} <= set(schema["paths"])
    props = schema["components"]["schemas"]["EmbeddingsRequest"]["properties"]
    assert {"input", "encoding_format", "dimensions", "input_type", "truncate"} <= set(props)
    assert "422" in schema["paths"]["/v1/embeddings"]["post"]["responses"]


# -- bad requests: status, and the message names the field -----------------------------------------------
BAD = [
    ("/v1/embeddings", b"{bad json", 422, "not valid JSON"),
    ("/v1/embeddings", b"", 422, "body is missing"),
    ("/v1/embeddings", b"[1, 2]", 422, "body must be a JSON object"),
    ("/v1/embeddings", b"{}", 422, "input: Field required"),
    ("/v1/embeddings", b'{"input": []}', 422, "input: an empty list"),
    ("/v1/embeddings", b'{"input": null}', 422, "input: must be a string, a list of strings"),
    ("/v1/embeddings", b'{"input": 5}', 422, "input: must be a string, a list of strings"),
    ("/v1/embeddings", b'{"input": {"a": 1}}', 422, "got an object"),
    # mixed ints and strings, ragged nesting, empty id lists: the message names the item
    ("/v1/embeddings", b'{"input": ["a", 1]}', 422, "input[1]: an int in a list of strings"),
    ("/v1/embeddings", b'{"input": [1, "a"]}', 422, "input[1]: a string in a list of token ids"),
    ("/v1/embeddings", b'{"input": [[1, "a"]]}', 422, "input[0][1]: a string where a token id (int) was expected"),
    ("/v1/embeddings", b'{"input": [[1], 2]}', 422, "input[1]: an int in a list of token-id lists"),
    ("/v1/embeddings", b'{"input": [1, [2]]}', 422, "input[1]: a list in a list of token ids"),
    ("/v1/embeddings", b'{"input": [[1], [[2]]]}', 422, "input[1][0]: a list where a token id"),
    ("/v1/embeddings", b'{"input": [[1], []]}', 422, "input[1]: an empty token-id list"),
    ("/v1/embeddings", b'{"input": [true]}', 422, "input[0]: a boolean; input must be"),
    ("/v1/embeddings", b'{"input": [1.5]}', 422, "input[0]: a number where a token id"),
    ("/v1/embeddings", b'{"input": [[5, 999999]]}', 422, "input[0][1]: token id 999999 is outside tiktoken "
                                                         "cl100k_base [0, 100277)"),
    ("/v1/embeddings", b'{"input": [-3]}', 422, "input[0]: token id -3 is outside"),
    ("/v1/embeddings", b'{"input": [[1, 2], [5, 100256]]}', 422, "input[1][1]: token id 100256 is not in tiktoken"),
    # a lone surrogate is valid JSON but not text (issue 13 item 6)
    ("/v1/embeddings", b'{"input": ["ok", "a\\ud800b"]}', 422, "input[1]: contains a lone surrogate"),
    ("/v1/embeddings", b'{"input": "\\udfff"}', 422, "input: contains a lone surrogate"),
    ("/v1/embeddings", b'{"input": "a", "encoding_format": "hex"}', 422, "encoding_format"),
    ("/v1/embeddings", b'{"input": "a", "input_type": "document"}', 422, "input_type"),
    ("/v1/embeddings", b'{"input": "a", "input_typ": "query"}', 422, "input_typ: unknown field"),
    ("/v1/embeddings", b'{"input": "a", "truncate": "yes"}', 422, "truncate"),
    ("/v1/embeddings", b'{"input": "a", "dimensions": "32"}', 422, "dimensions"),
    ("/v1/embeddings", b'{"input": "caf\xff"}', 422, "body is not valid UTF-8 (byte 14"),
    # 100 words + "query: " (2 tokens) + 2 special tokens
    ("/v1/embeddings", b'{"input": "' + b"water " * 100 + b'"}', 413, "input[0] has 104"),
    ("/v1/embeddings", b'{"input": ["a"' + b', "a"' * 64 + b"]}", 413, "65 inputs, the limit is 64"),
    ("/v1/embeddings", b'{"input": "' + b"a" * 300_000 + b'"}', 413, "the limit is 200000"),
    ("/embeddings", b'{"input": []}', 422, "input: an empty list"),
    ("/embed", b'{"inputs": []}', 422, "inputs: must be"),
    ("/embed", b'{"inputs": ["a", "\\ud800"]}', 422, "inputs[1]: contains a lone surrogate"),
    ("/embed", b'{"inputs": "a", "prompt_name": "search"}', 422, "prompt_name: Input should be"),
    ("/embed", b'{"inputs": "a", "normalize": 1}', 422, "normalize"),
    ("/embed", b'{"inputs": "a", "truncation_direction": "middle"}', 422, "truncation_direction: Input should be"),
    ("/embed", b'{"inputs": ["' + b"water " * 100 + b'"], "truncate": false}', 413, "send truncate=true"),
    ("/similarity", b'{"inputs": {"source_sentence": "a", "sentences": []}}', 422, "inputs.sentences"),
    ("/similarity", b'{"inputs": {"sentences": ["a"]}}', 422, "inputs.source_sentence: Field required"),
    ("/similarity", b'{"inputs": {"source_sentence": "a", "sentences": ["\\ud800"]}}', 422,
     "inputs.sentences[0]: contains a lone surrogate"),
    ("/similarity", b'{"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": {"truncat": true}}',
     422, "parameters.truncat: unknown field"),
    ("/similarity", b'{"inputs": {"source_sentence": "a", "sentences": ["b"]}, "parameters": {"truncate": true}, '
                    b'"truncate": true}', 422, "truncate is given both at the top level and in parameters"),
    ("/", b'{"inputs": "a", "prompt": "query"}', 422, "prompt: unknown field"),
    ("/", b'{"inputs": {"source_sentence": "a"}}', 422, "inputs.sentences: Field required"),
    ("/", b'["a"]', 422, "body must be a JSON object"),
    ("/nowhere", b"{}", 404, "Not Found"),
]


@pytest.mark.parametrize(("path", "body", "status", "needle"), BAD, ids=[f"{p}-{s}-{n[:24]}" for p, _, s, n in BAD])
def test_malformed_requests_table(server, path, body, status, needle):
    r = httpx.post(server.url + path, content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert needle in err["message"], err
    assert "Traceback" not in r.text and "File \"" not in r.text


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_json_body_is_read_whatever_its_content_type(server, e5_model, content_type):
    """curl -d sends form-urlencoded, some clients text/plain: a JSON body is still JSON (issue 13 item 22)."""
    headers = {"content-type": content_type} if content_type else {}
    r = httpx.post(server.url + "/v1/embeddings", content=b'{"input": ["water"]}', headers=headers)
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["data"][0]["embedding"], e5_model.encode_queries(["water"])[0], atol=1e-5)
    bad = httpx.post(server.url + "/embed", content=b"inputs=water", headers=headers)
    assert bad.status_code == 422 and "body is not valid JSON" in bad.text
    if content_type:
        assert f"sent as {content_type}; this server reads JSON" in bad.text


def test_wrong_method_and_streamed_oversize_body(server):
    assert httpx.get(server.url + "/v1/embeddings").status_code == 405

    def chunks():  # no Content-Length: the limit is enforced while the body streams in
        for _ in range(30):
            yield b" " * 10_000

    r = httpx.post(server.url + "/v1/embeddings", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and "over the limit" in r.json()["error"]["message"]


def test_bearer_auth(keyed_server):
    url = keyed_server.url
    body = {"input": "water"}
    assert httpx.post(url + "/v1/embeddings", json=body).status_code == 401
    bad = httpx.post(url + "/v1/embeddings", json=body, headers={"Authorization": "Bearer wrong"})
    assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
    assert httpx.post(url + "/v1/embeddings", json=body, headers={"Authorization": API_KEY}).status_code == 401
    assert httpx.get(url + "/metrics").status_code == 401 and httpx.get(url + "/info").status_code == 401
    assert httpx.get(url + "/health").status_code == 200 and httpx.get(url + "/ready").status_code == 200
    good = openai.OpenAI(base_url=url + "/v1", api_key=API_KEY, max_retries=0)
    assert len(good.embeddings.create(model="e5", input="water").data) == 1
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=url + "/v1", api_key="nope", max_retries=0).embeddings.create(model="e", input="x")


def test_internal_errors_hide_the_traceback(e5_model, monkeypatch):
    import e5kit.serve.tokens as tokens_mod
    from tests.serve.conftest import start_server

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    with start_server(e5_model) as srv:
        monkeypatch.setattr(tokens_mod.RequestTokenizer, "texts", boom)
        r = httpx.post(srv.url + "/embed", json={"inputs": "a"})
        assert r.status_code == 500 and "secret" not in r.text and "Traceback" not in r.text
        assert r.json()["error"]["type"] == "server_error"
        monkeypatch.undo()
        assert httpx.post(srv.url + "/embed", json={"inputs": "a"}).status_code == 200, "one failure is not fatal"


@pytest.mark.slow
def test_real_minilm_weights_with_e5_prompts_equal_offline(minilm_path):
    from e5kit import E5
    from e5kit.model.prompts import E5_PROMPTS
    from tests.serve.conftest import start_server

    model = E5(minilm_path, prompts=E5_PROMPTS)
    texts = ["how much protein should a female eat", "The summit of Everest is 8,849 m high.", "café"]
    with start_server(model) as srv:
        client = openai.OpenAI(base_url=srv.url + "/v1", api_key="unused", max_retries=0)
        docs = client.embeddings.create(model="m", input=texts, extra_body={"input_type": "passage"})
        queries = client.embeddings.create(model="m", input=texts)
    np.testing.assert_allclose(vectors(docs), model.encode_passages(texts), atol=1e-5)
    np.testing.assert_allclose(vectors(queries), model.encode_queries(texts), atol=1e-5)
    assert docs.usage.total_tokens == sum(model.count_tokens(texts, prompt_name="passage"))


def test_instruction_field_for_a_server_without_instruct_models(server, e5_model):
    """Issue 15: the field is documented, only null is valid, and a value is refused with the reason."""
    schema = httpx.get(server.url + "/openapi.json").json()["components"]["schemas"]
    for name in ("EmbeddingsRequest", "EmbedRequest", "SimilarityRequest"):
        assert schema[name]["properties"]["instruction"]["type"] == "null", name
    for path, body in (("/v1/embeddings", {"input": ["x"]}), ("/embed", {"inputs": ["x"]}),
                       ("/similarity", {"inputs": {"source_sentence": "x", "sentences": ["y"]}})):
        r = httpx.post(server.url + path, json={**body, "instruction": "Given a claim, find documents"})
        assert r.status_code == 422 and "no model served here has instruct prompts" in r.text, (path, r.text)
        assert httpx.post(server.url + path, json={**body, "instruction": None}).status_code == 200
