"""The shared argument checks in e5kit.options: one policy for counts and option names everywhere."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from e5kit.options import ArgumentTypeError, positive_int, with_options


def test_positive_int_accepts_ints_and_numpy_ints():
    assert positive_int("n", 3) == 3 and positive_int("n", np.int64(7)) == 7
    assert type(positive_int("n", np.int32(2))) is int


@pytest.mark.parametrize("bad", [True, False, 2.5, 3.0, "4", None, [1]])
def test_wrong_types_are_type_errors_that_are_value_errors_too(bad):
    with pytest.raises(ArgumentTypeError, match=r"^count must be a positive int, got ") as info:
        positive_int("count", bad)
    assert isinstance(info.value, TypeError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize("bad", [0, -1, np.int64(-3)])
def test_zero_and_negatives_are_value_errors(bad):
    with pytest.raises(ValueError, match="count must be a positive int") as info:
        positive_int("count", bad)
    assert not isinstance(info.value, TypeError)


def test_entry_points_that_once_took_true_as_one_now_refuse_it():
    from e5kit.data.decontaminate import Decontaminator

    with pytest.raises(ValueError, match="min_chars must be a positive int, got bool True"):
        Decontaminator([], min_chars=True)


def test_with_options_refuses_unknown_names():
    @dataclasses.dataclass
    class S:
        a: int = 1

    assert with_options(S, None, {"a": 2}).a == 2
    with pytest.raises(TypeError, match="unknown option"):
        with_options(S, None, {"b": 2})
