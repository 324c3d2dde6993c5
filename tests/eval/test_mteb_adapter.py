"""The mteb adapter runs inside mteb.evaluate on local custom tasks, and e5kit's scores equal mteb's."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mteb")

from datasets import Dataset, DatasetDict  # noqa: E402
from mteb.abstasks.classification import AbsTaskClassification  # noqa: E402
from mteb.abstasks.clustering_legacy import AbsTaskClusteringLegacy  # noqa: E402
from mteb.abstasks.pair_classification import AbsTaskPairClassification  # noqa: E402
from mteb.abstasks.retrieval import AbsTaskRetrieval  # noqa: E402
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData  # noqa: E402
from mteb.abstasks.sts import AbsTaskSTS  # noqa: E402
from mteb.abstasks.task_metadata import TaskMetadata  # noqa: E402

from e5kit.eval import datasets as loaders  # noqa: E402
from e5kit.eval.models import DenseModel  # noqa: E402
from e5kit.eval.mteb_adapter import MtebE5  # noqa: E402
from e5kit.eval.tasks import classification, clustering, pair_classification, retrieval, sts  # noqa: E402

from .tiny_data import make_beir, make_labelled, make_pairs  # noqa: E402

GENERAL = dict(description="Local synthetic task for e5kit tests.", reference="https://example.org",
               dataset={"path": "local", "revision": "local"}, category="t2t", eval_splits=["test"],
               eval_langs=["eng-Latn"], date=("2024-01-01", "2024-01-01"), dialect=["Written"], domains=[],
               task_subtypes=[], license="cc-by-4.0", annotations_creators="derived", modalities=["text"],
               sample_creation="found", bibtex_citation="")


def meta(kind: str, name: str, main: str) -> TaskMetadata:
    return TaskMetadata(type=kind, name=name, main_score=main, **GENERAL)


@pytest.fixture(scope="module")
def tiny(tiny_e5):
    """Tiny random E5-named model: checks the prompt handling."""
    from e5kit import E5

    return E5(tiny_e5)


@pytest.fixture(scope="module")
def real(minilm_path):
    """Real weights (all-MiniLM-L6-v2), so the scores compared below are far from degenerate."""
    from e5kit import E5

    return E5(minilm_path)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mteb-data")
    return {"beir": make_beir(root / "beir", seed=1), "sts": make_pairs(root / "sts.jsonl.gz", seed=2),
            "pairs": make_pairs(root / "pairs.jsonl.gz", seed=3, target="label"),
            "train": make_labelled(root / "cls.train.jsonl.gz", seed=4, n=45),
            "test": make_labelled(root / "cls.test.jsonl.gz", seed=5, n=30)}


def run_mteb(adapter, task):
    import mteb

    result = mteb.evaluate(adapter, [task], cache=None, show_progress_bar=False)
    assert not result.exceptions, result.exceptions
    return result.task_results[0].scores["test"][0]


def test_adapter_protocol_and_prefixes(tiny):
    from mteb.models.models_protocols import EncoderProtocol

    adapter = MtebE5(tiny)
    assert isinstance(adapter, EncoderProtocol)
    assert adapter.role_for("document") == "passage" and adapter.role_for(None) == "query"
    batches = [{"text": ["water", "fire"]}, {"text": ["earth"]}]
    got = adapter.encode(batches, prompt_type=None)
    assert got.shape == (3, tiny.dim)
    assert (got == tiny.encode(["query: water", "query: fire", "query: earth"])).all()
    docs = adapter.encode(batches, prompt_type="document")
    assert (docs == tiny.encode_passages(["water", "fire", "earth"])).all()
    assert adapter.similarity(got, got).shape == (3, 3)
    assert adapter.similarity_pairwise(got, docs).shape == (3,)
    meta_ = adapter.mteb_model_meta
    assert meta_.embed_dim == tiny.dim and meta_.similarity_fn_name.value == "cosine"
    with pytest.raises(TypeError):
        adapter.encode([["not", "a", "batch"]])
    with pytest.raises(ValueError):
        adapter.similarity_pairwise(got, got[:2])
    with pytest.raises(TypeError):
        MtebE5(42)


def test_retrieval_equals_mteb(real, files):
    data = loaders.load_beir(files["beir"])

    class LocalRetrieval(AbsTaskRetrieval):
        metadata = meta("Retrieval", "E5kitLocalRetrieval", "ndcg_at_10")

        def load_data(self, num_proc=None, **kwargs):
            corpus = Dataset.from_list([{"id": i, **d} for i, d in zip(data.corpus_ids, data.corpus, strict=True)])
            queries = Dataset.from_list([{"id": i, "text": t} for i, t in zip(data.query_ids, data.queries,
                                                                             strict=True)])
            split = RetrievalSplitData(queries=queries, corpus=corpus, relevant_docs=data.qrels, top_ranked=None)
            self.dataset = {"default": {"test": split}}
            self.data_loaded = True

    theirs = run_mteb(MtebE5(real), LocalRetrieval())
    ours = retrieval.evaluate(DenseModel(real, show_progress=False), data).scores
    for key in ("ndcg_at_1", "ndcg_at_10", "map_at_10", "recall_at_10", "recall_at_100", "mrr_at_10"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-5), key


def test_sts_equals_mteb(real, files):
    s1, s2, gold = loaders.load_pairs(files["sts"], target="score")

    class LocalSTS(AbsTaskSTS):
        metadata = meta("STS", "E5kitLocalSTS", "cosine_spearman")
        min_score, max_score = 0, 5

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict({"test": Dataset.from_dict({"sentence1": s1, "sentence2": s2, "score": gold})})
            self.data_loaded = True

    theirs = run_mteb(MtebE5(real), LocalSTS())
    ours = sts.evaluate(DenseModel(real, show_progress=False), (s1, s2, gold)).scores
    for key in ("cosine_spearman", "cosine_pearson", "euclidean_spearman", "manhattan_pearson"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-5), key


def test_pair_classification_equals_mteb(real, files):
    s1, s2, labels = loaders.load_pairs(files["pairs"], target="label")
    ints = [int(y) for y in labels]

    class LocalPairs(AbsTaskPairClassification):
        metadata = meta("PairClassification", "E5kitLocalPairs", "max_ap")

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict({"test": Dataset.from_dict({"sentence1": s1, "sentence2": s2,
                                                                   "labels": ints})})
            self.data_loaded = True

    theirs = run_mteb(MtebE5(real), LocalPairs())
    ours = pair_classification.evaluate(DenseModel(real, show_progress=False), (s1, s2, labels)).scores
    for key in ("max_ap", "cosine_ap", "cosine_accuracy", "cosine_f1", "euclidean_ap", "manhattan_ap", "dot_ap"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-5), key


def test_classification_equals_mteb(real, files):
    train = loaders.load_labelled(files["train"])
    test = loaders.load_labelled(files["test"])

    class LocalClassification(AbsTaskClassification):
        metadata = meta("Classification", "E5kitLocalClassification", "accuracy")
        samples_per_label = 4

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict({
                "train": Dataset.from_dict({"text": train[0], "label": train[1]}),
                "test": Dataset.from_dict({"text": test[0], "label": test[1]})})
            self.data_loaded = True

    theirs = run_mteb(MtebE5(real), LocalClassification())
    ours = classification.evaluate(DenseModel(real, show_progress=False), train, test, samples_per_label=4).scores
    for key in ("accuracy", "f1", "f1_weighted"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-9), key


def test_clustering_equals_mteb(real, files):
    texts, labels = loaders.load_labelled(files["train"])

    class LocalClustering(AbsTaskClusteringLegacy):
        metadata = meta("Clustering", "E5kitLocalClustering", "v_measure")

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = DatasetDict({"test": Dataset.from_dict({"sentences": [texts], "labels": [labels]})})
            self.data_loaded = True

    theirs = run_mteb(MtebE5(real), LocalClustering())
    ours = clustering.evaluate(DenseModel(real, show_progress=False), (texts, labels), n_seeds=1).scores
    assert ours["v_measure"] == pytest.approx(theirs["v_measure"], abs=1e-9)
