"""Named evaluation datasets (everything in shared/data) and user datasets given by task type.

A dataset is a folder (retrieval: BEIR layout) or JSONL files (the other task types), plus the
options its task needs (split, samples_per_label, ignore_identical_ids). Names are resolved
against a data directory: --data-dir, else $E5KIT_DATA_DIR, else ../shared/data from the
current directory or from the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from e5kit.eval import datasets as loaders
from e5kit.eval.tasks import TASK_TYPES, check_task_type

ENV_DATA_DIR = "E5KIT_DATA_DIR"


@dataclass(frozen=True)
class DatasetSpec:
    """Where a dataset lives (relative to the data dir unless absolute) and how to evaluate it."""

    name: str
    task_type: str
    path: str  # retrieval: folder; others: the evaluation file
    split: str = "test"
    train_path: str | None = None  # classification only
    options: dict[str, Any] = field(default_factory=dict)
    mteb_name: str | None = None
    note: str = ""
    instruction: str | None = None  # the task description instruct models' queries get (TASK_INSTRUCTIONS)

    def resolve(self, data_dir: Path | None) -> DatasetSpec:
        """The same spec with absolute paths (relative paths joined to data_dir)."""
        def absolute(p: str | None) -> str | None:
            if p is None or Path(p).is_absolute() or data_dir is None:
                return p
            return str(Path(data_dir) / p)

        return replace(self, path=absolute(self.path) or self.path, train_path=absolute(self.train_path))

    def load(self) -> dict[str, Any]:
        """The data the task module's evaluate() takes, as keyword arguments."""
        if self.task_type == "retrieval":
            return {"data": loaders.load_beir(self.path, self.split)}
        if self.task_type == "sts":
            return {"data": loaders.load_pairs(self.path, target="score")}
        if self.task_type == "pair_classification":
            return {"data": loaders.load_pairs(self.path, target="label")}
        if self.task_type == "clustering":
            return {"data": loaders.load_labelled(self.path)}
        if self.train_path is None:
            raise ValueError(f"classification dataset {self.name!r} needs a training file")
        return {"train": loaders.load_labelled(self.train_path), "test": loaders.load_labelled(self.path)}


_STS_NOTE = ("original-case SemEval text; mteb uses a lower-cased/tokenised copy, so scores can differ "
             "slightly from published ones")

REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in (
    DatasetSpec("scifact", "retrieval", "scifact", mteb_name="SciFact"),
    DatasetSpec("stsbenchmark", "sts", "sts/stsbenchmark.test.jsonl.gz", mteb_name="STSBenchmark"),
    *(DatasetSpec(f"sts{y}", "sts", f"sts/sts{y}.test.jsonl.gz", mteb_name=f"STS{y}", note=_STS_NOTE)
      for y in (12, 13, 14, 15, 16)),
    DatasetSpec("banking77", "classification", "classification/banking77.test.jsonl.gz",
                train_path="classification/banking77.train.jsonl.gz", options={"samples_per_label": 8},
                mteb_name="Banking77Classification"),
    DatasetSpec("amazon_counterfactual_en", "classification",
                "classification/amazon_counterfactual_en.test.jsonl.gz",
                train_path="classification/amazon_counterfactual_en.train.jsonl.gz",
                options={"samples_per_label": 32}, mteb_name="AmazonCounterfactualClassification (en)"),
    DatasetSpec("twentynewsgroups", "clustering", "clustering/twentynewsgroups.test.jsonl.gz",
                mteb_name="TwentyNewsgroupsClustering",
                note="one set of 7,532 subjects; mteb clusters 10 sub-sampled sets, so not directly comparable"),
    DatasetSpec("twitterurl", "pair_classification", "pair_classification/twitterurl.test.jsonl.gz",
                mteb_name="TwitterURLCorpus",
                note="test file only (9,334 pairs); mteb uses train + test (51,534), so not directly comparable"),
)}


# The task descriptions instruct models (multilingual-e5-large-instruct, e5-mistral-7b-instruct) get for each
# registered task: the wording the E5 authors evaluate with (Wang et al., "Improving Text Embeddings with Large
# Language Models", ACL 2024, appendix table of instructions; microsoft/unilm e5/utils.py). Edit here, or give
# --instruction (Python: EvalSettings.instruction) for a run. Non-instruct models ignore them.
TASK_INSTRUCTIONS: dict[str, str] = {
    "scifact": "Given a scientific claim, retrieve documents that support or refute the claim",
    **{name: "Retrieve semantically similar text." for name in ("stsbenchmark", "sts12", "sts13", "sts14", "sts15",
                                                                 "sts16")},
    "banking77": "Given a online banking query, find the corresponding intents",
    "amazon_counterfactual_en": "Classify a given Amazon customer review text as either counterfactual or "
                                "not-counterfactual",
    "twentynewsgroups": "Identify the topic or theme of the given news articles",
    "twitterurl": "Retrieve tweets that are semantically similar to the given tweet",
}


def default_data_dir() -> Path | None:
    """$E5KIT_DATA_DIR, else the first existing ../shared/data from the cwd or the repository."""
    env = os.environ.get(ENV_DATA_DIR)
    if env:
        return Path(env).expanduser()
    repo = Path(__file__).resolve().parents[3]
    for base in (Path.cwd(), repo):
        candidate = base.parent / "shared" / "data"
        if candidate.is_dir():
            return candidate
    return None


def user_dataset(path: str | os.PathLike[str], task_type: str, *, name: str | None = None, split: str = "test",
                 **options: Any) -> DatasetSpec:
    """A dataset the user points at. Retrieval: a BEIR folder. Classification: a folder with
    train.jsonl[.gz] and <split>.jsonl[.gz], or a test file with a sibling train file
    (`x.test.jsonl.gz` -> `x.train.jsonl.gz`). Other types: a JSONL file, or a folder with <split>.jsonl[.gz].
    """
    check_task_type(task_type)
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"dataset path not found: {p}")
    name = name or (p.name.split(".")[0] if p.is_file() else p.name)
    if task_type == "retrieval":
        if not p.is_dir():
            raise ValueError(f"a retrieval dataset must be a BEIR folder, got the file {p}")
        return DatasetSpec(name, task_type, str(p.resolve()), split=split, options=options)
    train = None
    if p.is_dir():
        evaluation = loaders.find_jsonl(p, split)
        if task_type == "classification":
            train = loaders.find_jsonl(p, "train")
    else:
        evaluation = p
        if task_type == "classification":
            train = p.with_name(p.name.replace(f".{split}.", ".train.", 1))
            if train == p or not train.is_file():
                raise FileNotFoundError(f"no training file for {p} (expected {train.name} beside it)")
    return DatasetSpec(name, task_type, str(evaluation.resolve()), split=split,
                       train_path=str(train.resolve()) if train else None, options=options)


def get_dataset(spec: str, data_dir: str | os.PathLike[str] | None = None) -> DatasetSpec:
    """A registered name ("scifact"), or "TYPE:PATH" for a user dataset ("retrieval:/data/nfcorpus")."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"dataset must be a non-empty str, got {spec!r}")
    spec = spec.strip()
    if spec.lower() in REGISTRY:
        base = Path(data_dir).expanduser() if data_dir else default_data_dir()
        if base is None:
            raise FileNotFoundError(f"no data directory for {spec!r}: pass --data-dir or set ${ENV_DATA_DIR}")
        if not base.is_dir():
            raise FileNotFoundError(f"data directory not found: {base}")
        return replace(REGISTRY[spec.lower()].resolve(base), instruction=TASK_INSTRUCTIONS.get(spec.lower()))
    task_type, sep, path = spec.partition(":")
    if sep and task_type in TASK_TYPES:
        return user_dataset(path, task_type)
    raise ValueError(f"unknown dataset {spec!r}; use one of {', '.join(REGISTRY)} or TYPE:PATH with TYPE in "
                     f"{', '.join(TASK_TYPES)}")
