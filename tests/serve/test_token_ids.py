"""Cl100kDecoder: cl100k_base ids back to text; a missing encoding or a bad id is a 422 naming the fix or item."""

from __future__ import annotations

import threading

import pytest

from e5kit.serve.token_ids import Cl100kDecoder, StillLoadingError, TokenIdsUnavailableError
from e5kit.serve.tokens import BadInputError


def test_decodes_what_tiktoken_encoded(cl100k):
    texts = ["how much protein should a female eat", "café 中文 🙂", "", "passage: x\nnew line"]
    dec = Cl100kDecoder(loader=lambda: cl100k)
    assert dec.decode([cl100k.encode_ordinary(t) or [0] for t in texts[:2]]) == texts[:2]
    assert dec.decode([cl100k.encode_ordinary(texts[3])]) == [texts[3]]
    assert dec.status == "ready"


@pytest.mark.parametrize(("arrays", "nested", "where"), [
    ([[1, 2], [3, 100256]], True, "input[1][1]: token id 100256"),
    ([[5, 100277]], False, "input[1]: token id 100277"),
    ([[10**12]], True, "input[0][0]: token id 1000000000000"),
])
def test_ids_outside_cl100k_name_the_item(cl100k, arrays, nested, where):
    with pytest.raises(BadInputError, match=where.replace("[", r"\[").replace("]", r"\]")):
        Cl100kDecoder(loader=lambda: cl100k).decode(arrays, nested=nested)


def test_unavailable_encoding_names_cause_and_fixes():
    def offline():
        raise ConnectionError("name resolution failed")

    dec = Cl100kDecoder(loader=offline)
    with pytest.raises(TokenIdsUnavailableError) as info:
        dec.decode([[1, 2]])
    msg = str(info.value)
    assert "ConnectionError: name resolution failed" in msg and "check_embedding_ctx_length=False" in msg
    assert "TIKTOKEN_CACHE_DIR" in msg and "--token-ids model" in msg and info.value.code == "token_ids_unavailable"
    assert dec.status.startswith("unavailable: tiktoken could not load cl100k_base")


def test_missing_tiktoken_package_is_named():
    def no_package():
        raise ImportError("No module named 'tiktoken'")

    with pytest.raises(TokenIdsUnavailableError, match="tiktoken package is not installed"):
        Cl100kDecoder(loader=no_package).decode([[1]])


def test_a_slow_load_is_503_not_a_hang(cl100k):
    gate = threading.Event()
    dec = Cl100kDecoder(loader=lambda: gate.wait(10) and cl100k)
    with pytest.raises(StillLoadingError, match="still loading"):
        dec.decode([[1]], wait_s=0.05)
    assert dec.status == "loading"
    gate.set()
    assert dec.decode([[9906]], wait_s=10) == ["Hello"]
