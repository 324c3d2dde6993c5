import pytest

from e5kit.index import cache as cache_mod
from e5kit.index.cache import CACHE_DIR_NAME, cache_key, fetch_records, search_corpus
from e5kit.index.corpus import BEIR_FIELDS, CorpusFields

from .helpers import write_corpus


def test_second_search_does_not_encode_the_corpus(tmp_path, e5_tiny, monkeypatch):
    write_corpus(tmp_path / "corpus.jsonl", 30)
    first = search_corpus(tmp_path, ["cell water"], model=e5_tiny, k=3)  # a BEIR folder
    assert first.encoded and first.index.folder.parent == tmp_path / CACHE_DIR_NAME
    calls = []
    real = e5_tiny.iter_encode
    monkeypatch.setattr(e5_tiny, "iter_encode", lambda *a, **k: calls.append(1) or real(*a, **k))
    second = search_corpus(tmp_path / "corpus.jsonl", ["cell water"], model=e5_tiny, k=3)
    assert not second.encoded and calls == []  # only the query is encoded (encode, not iter_encode)
    assert [h.id for h in second.hits[0]] == [h.id for h in first.hits[0]]
    assert second.index.folder == first.index.folder


def test_cache_key_follows_content_and_settings(tmp_path, e5_tiny, bert_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 5)
    base = cache_key(e5_tiny, [corpus], normalize=True, fields=BEIR_FIELDS)
    assert base == cache_key(e5_tiny, [corpus], normalize=True, fields=BEIR_FIELDS)
    assert base != cache_key(e5_tiny, [corpus], normalize=False, fields=BEIR_FIELDS)
    assert base != cache_key(bert_tiny, [corpus], normalize=True, fields=BEIR_FIELDS)
    assert base != cache_key(e5_tiny, [corpus], normalize=True, fields=CorpusFields(title=None))
    write_corpus(corpus, 5, start=1)
    assert base != cache_key(e5_tiny, [corpus], normalize=True, fields=BEIR_FIELDS)


def test_changed_corpus_is_encoded_again(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 6)
    search_corpus(corpus, ["x"], model=e5_tiny, k=2)
    write_corpus(corpus, 7)
    res = search_corpus(corpus, ["x"], model=e5_tiny, k=10)
    assert res.encoded and len(res.index) == 7 and len(res.hits[0]) == 7


def test_unwritable_corpus_folder_uses_user_cache(tmp_path, e5_tiny, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 4)
    monkeypatch.setattr(cache_mod, "_writable", lambda folder: folder.name != CACHE_DIR_NAME)  # beside: no
    monkeypatch.setenv("E5KIT_CACHE", str(tmp_path / "user-cache"))
    res = search_corpus(corpus, ["x"], model=e5_tiny, k=1)
    assert res.index.folder.parent == tmp_path / "user-cache" / "search"
    res = search_corpus(corpus, ["x"], model=e5_tiny, k=1, cache_dir=tmp_path / "explicit")
    assert res.index.folder.parent == tmp_path / "explicit"


def test_fetch_records_and_bad_queries(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 8)
    res = search_corpus(corpus, "cell", model=e5_tiny, k=8)  # one str is one query
    got = fetch_records(res.index, {0, 5})
    assert sorted(got) == [0, 5] and got[5].id == "d5" and got[5].text.startswith("title 0 ")
    with pytest.raises(ValueError, match="at least one query"):
        search_corpus(corpus, [], model=e5_tiny)
    with pytest.raises(FileNotFoundError):
        search_corpus(tmp_path / "missing.jsonl", ["x"], model=e5_tiny)


def test_i13_31_failed_search_leaves_no_orphan_cache_folder(tmp_path, e5_tiny):
    path = tmp_path / "corpus.jsonl"
    path.write_text('{"_id": "a", "text": "x"}\n{"_id": "b", "text": ""}\n')
    with pytest.raises(ValueError, match="empty text"):
        search_corpus(path, ["x"], model=e5_tiny, k=1)
    assert not (tmp_path / CACHE_DIR_NAME).exists()
    res = search_corpus(path, ["x"], model=e5_tiny, k=5, skip_empty=True)  # item 17: the advice works here too
    assert [h.id for h in res.hits[0]] == ["a"]


def test_i13_17_skip_empty_is_part_of_the_cache_key(tmp_path, e5_tiny):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 5)
    assert cache_key(e5_tiny, [corpus], normalize=True, fields=BEIR_FIELDS) != cache_key(
        e5_tiny, [corpus], normalize=True, fields=BEIR_FIELDS, skip_empty=True)
