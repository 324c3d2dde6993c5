import pytest


@pytest.fixture(scope="session")
def e5_tiny(tiny_e5):
    """The tiny E5-named checkpoint, loaded once (index tests only read it)."""
    from e5kit import E5

    return E5(str(tiny_e5))


@pytest.fixture(scope="session")
def bert_tiny(tiny_bert):
    from e5kit import E5

    return E5(str(tiny_bert))
