"""read_input: the OpenAI `input` field's four shapes, and every malformed item named by its path."""

from __future__ import annotations

import pytest

from e5kit.model.tokenize import check_text
from e5kit.serve.inputs import read_input


def test_the_four_shapes():
    assert read_input("a").texts == ["a"]
    assert read_input(["a", ""]).texts == ["a", ""]
    one = read_input([1, 2.0])
    assert one.arrays == [[1, 2]] and one.single and one.count == 1
    many = read_input([[1], [2, 3]], vocab=10)
    assert many.arrays == [[1], [2, 3]] and not many.single and many.count == 2


@pytest.mark.parametrize(("value", "needle"), [
    (None, "input: must be a string, a list of strings, a list of token ids (ints) or a list of token-id lists, "
           "got null"),
    (7, "got an int"),
    ([], "input: an empty list"),
    (["a", None], "input[1]: null in a list of strings"),
    (["a", ["b"]], "input[1]: a list in a list of strings"),
    ([3, "a"], "input[1]: a string in a list of token ids"),
    ([3, [4]], "input[1]: a list in a list of token ids"),
    ([[3], 4], "input[1]: an int in a list of token-id lists"),
    ([[3], [[4]]], "input[1][0]: a list where a token id (int) was expected"),
    ([[3], []], "input[1]: an empty token-id list"),
    ([[3, True]], "input[0][1]: a boolean where a token id"),
    ([[3, 1.5]], "input[0][1]: a number where a token id"),
    ([[3, 10]], "input[0][1]: token id 10 is outside the test vocab [0, 10)"),
    ([-1], "input[0]: token id -1 is outside"),
    ([{"a": 1}], "input[0]: an object; input must be"),
    (["ok", "x\ud800"], "input[1]: contains a lone surrogate '\\ud800' at character 1"),
])
def test_malformed_inputs_are_named(value, needle):
    with pytest.raises(ValueError) as info:
        read_input(value, vocab=10, vocab_name="the test vocab")
    assert needle in str(info.value)


def test_check_text_passes_valid_unicode_and_refuses_surrogates():
    assert check_text("café 中文 🙂") == "café 中文 🙂"
    with pytest.raises(ValueError, match="contains a lone surrogate"):
        check_text("\udfff")
