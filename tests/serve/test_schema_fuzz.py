"""Property tests of the request schema: generated requests never crash the server or break the contract.

schemathesis generates requests from the served OpenAPI schema (valid and invalid ones) and checks
each answer against it: no 5xx, documented status codes, content types and response schemas.
hypothesis throws arbitrary JSON at /v1/embeddings: the answer is a 200 with one vector per input,
or a 413/422 with the common error shape, never anything else.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from e5kit.serve import ServeConfig, create_app

FUZZ = settings(max_examples=30, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture
def api_schema(e5_model):
    app = create_app(e5_model, ServeConfig(auto_truncate=True))
    app.app.state.service.batcher.start()  # schemathesis drives the app without a lifespan startup
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.app.state.service.batcher.close()


@pytest.fixture(scope="module")
def client(e5_model):
    with TestClient(create_app(e5_model, ServeConfig()), raise_server_exceptions=False) as client:
        yield client  # the context runs the lifespan: batcher started, then drained


def test_every_operation_keeps_its_contract(api_schema):
    @settings(FUZZ, max_examples=40)
    @given(case=api_schema.as_strategy())
    def check(case):
        case.call_and_validate()

    check()


JSON = st.recursive(st.none() | st.booleans() | st.integers(-5, 40_000) | st.floats(allow_nan=False)
                    | st.text(max_size=40), lambda kids: st.lists(kids, max_size=5)
                    | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=20)
BODIES = st.one_of(
    JSON,
    st.fixed_dictionaries({"input": JSON}),
    st.fixed_dictionaries({"input": st.lists(st.text(max_size=30), min_size=1, max_size=8)},
                          optional={"encoding_format": st.sampled_from(["float", "base64", "hex"]),
                                    "input_type": st.sampled_from(["query", "passage", "none", "x", None]),
                                    "truncate": st.booleans(), "dimensions": st.integers(-1, 64)}),
    st.fixed_dictionaries({"input": st.lists(st.lists(st.integers(-2, 200), min_size=1, max_size=70),
                                             min_size=1, max_size=4)}),
)


@FUZZ
@given(body=BODIES)
def test_arbitrary_json_gets_vectors_or_a_clean_error(client, body):
    r = client.post("/v1/embeddings", content=json.dumps(body), headers={"content-type": "application/json"})
    assert r.status_code in (200, 413, 422), r.text
    payload = r.json()
    if r.status_code == 200:
        n = 1 if isinstance(body["input"], str) or isinstance(body["input"][0], int) else len(body["input"])
        assert len(payload["data"]) == n and payload["usage"]["total_tokens"] > 0
    else:
        assert set(payload) == {"error"} and payload["error"]["message"] and "Traceback" not in r.text
