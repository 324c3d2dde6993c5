"""NLI JSON Lines (SNLI, MultiNLI): {"sentence1", "sentence2", "gold_label"} as released, or {"premise",
"hypothesis", "label"} as in the Hugging Face copies (0 entailment, 1 neutral, 2 contradiction). As in E5
and SimCSE: a premise with an entailed hypothesis is a positive pair, its contradicted hypotheses are the hard
negatives; neutral and unlabeled ("-", -1) lines are not used. Hypotheses are grouped by premise over the
whole file (NLI files are small), one pair per entailment."""

from __future__ import annotations

import os
from collections.abc import Iterator

from e5kit.data.pairs import Pair, clean_space
from e5kit.errors import InputFormatError
from e5kit.io.records import iter_jsonl

NAME = "nli"
LABELS = {"entailment": "entailment", "contradiction": "contradiction", "neutral": "neutral", "-": None,
          0: "entailment", 1: "neutral", 2: "contradiction", -1: None}


def _fields(obj: dict, where: str) -> tuple[str, str, str | None]:
    premise = obj.get("sentence1", obj.get("premise"))
    hypothesis = obj.get("sentence2", obj.get("hypothesis"))
    label = obj.get("gold_label", obj.get("label"))
    if not isinstance(premise, str) or not isinstance(hypothesis, str):
        raise InputFormatError(f"{where}: needs sentence1/sentence2 (or premise/hypothesis) strings "
                               f"(fields: {', '.join(sorted(obj))})")
    if isinstance(label, bool) or label not in LABELS:
        raise InputFormatError(f"{where}: label {label!r} is not one of entailment, neutral, contradiction, '-' "
                               "or 0, 1, 2, -1")
    return clean_space(premise), clean_space(hypothesis), LABELS[label]


def iter_file(path: str | os.PathLike[str], *, max_negatives: int | None = None) -> Iterator[Pair]:
    groups: dict[str, dict[str, list[str]]] = {}
    for n, obj in enumerate(iter_jsonl(path), start=1):
        premise, hypothesis, label = _fields(obj, f"{path}: record {n}")
        if label in ("entailment", "contradiction") and premise and hypothesis:
            group = groups.setdefault(premise, {"entailment": [], "contradiction": []})
            if hypothesis not in group[label]:
                group[label].append(hypothesis)
    for premise, group in groups.items():
        negatives = group["contradiction"][:max_negatives] or None
        for hypothesis in group["entailment"]:
            yield Pair(premise, hypothesis, NAME, {}, list(negatives) if negatives else None)
