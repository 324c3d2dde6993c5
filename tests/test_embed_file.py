"""encode_file's arguments: a settings dataclass or keywords; bad ones refused before the model loads."""

from __future__ import annotations

import pytest

from e5kit.embed_file import EncodeFileSettings, encode_file


def never_loads():
    raise AssertionError("the model must not load for bad arguments")


@pytest.mark.parametrize("options, message", [
    ({}, "give role="), ({"role": "document"}, "not one of"),
    ({"role": "passage", "instruction": "x"}, "role 'query'"), ({"role": "query", "colour": 1}, "unknown option"),
])
def test_bad_arguments_fail_before_any_work(tmp_path, options, message):
    src = tmp_path / "in.txt"
    src.write_text("water\n")
    with pytest.raises((ValueError, TypeError), match=message):
        encode_file(never_loads, src, tmp_path / "out.npy", **options)
    assert not (tmp_path / "out.npy").exists()


def test_settings_or_keywords_give_the_same_file(tiny_e5, tmp_path):
    import numpy as np

    from e5kit import E5

    src = tmp_path / "in.txt"
    src.write_text("water\nfire and earth\n")
    model = E5(tiny_e5)
    encode_file(model, src, tmp_path / "a.npy", EncodeFileSettings(role="query", normalize=False))
    encode_file(model, src, tmp_path / "b.npy", role="query", normalize=False)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    with pytest.raises(TypeError, match="settings must be"):
        encode_file(model, src, tmp_path / "c.npy", {"role": "query"})
