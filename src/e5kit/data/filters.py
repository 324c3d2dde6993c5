"""Rule filters, applied in order, each dropping a pair with a named reason: length bounds (characters and
tokens), decontamination against evaluation sets, English language identification, exact duplicates and near
duplicates (MinHash LSH). `filter_rules` streams shards through them and writes a per-reason, per-source report."""

from __future__ import annotations

import functools
import logging
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

from e5kit.data.decontaminate import Decontaminator, default_eval_dirs, text_key
from e5kit.data.pairs import Pair, normalize_text
from e5kit.data.shards import OutputSettings, PairWriter, bad_log_path, interleave, iter_shard, list_shards
from e5kit.io.atomic import atomic_write_json
from e5kit.io.bad_records import BadRecords
from e5kit.options import with_options

log = logging.getLogger("e5kit")
_WORD = re.compile(r"\w+", re.UNICODE)
LANG_BACKENDS = ("langid", "lingua")
STEPS = ("length", "decontaminate", "language", "exact_dedup", "near_dedup")
Check = Callable[[Pair], "str | None"]


@dataclass
class RuleConfig:
    """Settings of the rule filters; any step can be switched off. Token bounds count `tokenizer` tokens
    (a model folder) or, without one, words."""

    min_query_chars: int = 3
    max_query_chars: int = 1000
    min_passage_chars: int = 20
    max_passage_chars: int = 10000
    min_query_tokens: int = 1
    max_query_tokens: int | None = None
    min_passage_tokens: int = 4
    max_passage_tokens: int | None = None
    tokenizer: str | None = None
    english: bool = True
    lang_backend: str = "langid"
    min_lang_prob: float = 0.5
    decontaminate: bool = True
    eval_dirs: list[str] | None = None  # evaluation folders added to the default sets
    default_eval_sets: bool = True  # the sets e5kit knows ($E5KIT_EVAL_DATA or shared/data); False: eval_dirs only
    decon_min_chars: int = 10
    exact_dedup: bool = True
    near_dedup: bool = True
    near_threshold: float = 0.9
    num_perm: int = 64
    shingle_words: int = 3
    examples_per_reason: int = 3

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None, **overrides: Any) -> RuleConfig:
        """Settings from a JSON file of RuleConfig fields (or the defaults), then `overrides` that are not None;
        an unknown field is refused with the valid ones listed."""
        import json

        fields: dict[str, Any] = {}
        if path:
            with open(path, encoding="utf-8") as fh:
                fields = json.load(fh)
            if not isinstance(fields, dict):
                raise ValueError(f"{path}: expected a JSON object of RuleConfig fields")
        fields.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return with_options(cls, None, fields)
        except TypeError as exc:
            raise ValueError(f"bad rule config{f' in {path}' if path else ''}: {exc}") from None

    def __post_init__(self) -> None:
        if self.lang_backend not in LANG_BACKENDS:
            raise ValueError(f"lang_backend must be one of {LANG_BACKENDS}, got {self.lang_backend!r}")
        if not 0.0 < self.near_threshold <= 1.0:
            raise ValueError(f"near_threshold must be in (0, 1], got {self.near_threshold!r}")
        if not 0.0 <= self.min_lang_prob <= 1.0:
            raise ValueError(f"min_lang_prob must be in [0, 1], got {self.min_lang_prob!r}")
        for name in ("min_query_chars", "max_query_chars", "min_passage_chars", "max_passage_chars",
                     "num_perm", "shingle_words"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 0:
                raise ValueError(f"{name} must be a non-negative int, got {getattr(self, name)!r}")


class LengthFilter:
    """Character and token bounds on query and passage."""

    name = "length"

    def __init__(self, cfg: RuleConfig) -> None:
        self.cfg = cfg
        self._count = _word_count
        if cfg.tokenizer:
            from e5kit.model.checkpoint import read_checkpoint
            from e5kit.model.encoder import load_tokenizer

            tok = load_tokenizer(read_checkpoint(cfg.tokenizer)).hf
            self._count = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])

    def __call__(self, pair: Pair) -> str | None:
        c = self.cfg
        for role, text, lo, hi in (("query", pair.query, c.min_query_chars, c.max_query_chars),
                                   ("passage", pair.passage, c.min_passage_chars, c.max_passage_chars)):
            if len(text) < lo:
                return f"{role}_short_chars"
            if len(text) > hi:
                return f"{role}_long_chars"
        for role, text, lo, hi in (("query", pair.query, c.min_query_tokens, c.max_query_tokens),
                                   ("passage", pair.passage, c.min_passage_tokens, c.max_passage_tokens)):
            if lo or hi:
                n = self._count(text)
                if n < lo:
                    return f"{role}_short_tokens"
                if hi is not None and n > hi:
                    return f"{role}_long_tokens"
        return None


def _word_count(text: str) -> int:
    return len(_WORD.findall(text))


class LanguageFilter:
    """Keep pairs whose query + passage is identified as English with probability >= `min_prob`."""

    name = "language"

    def __init__(self, backend: str = "langid", min_prob: float = 0.5) -> None:
        if backend not in LANG_BACKENDS:
            raise ValueError(f"language backend must be one of {LANG_BACKENDS}, got {backend!r}")
        self.min_prob = min_prob
        self.english_prob = make_english_scorer(backend)

    def __call__(self, pair: Pair) -> str | None:
        text = f"{pair.query}\n{pair.passage[:500]}"
        return None if self.english_prob(text) >= self.min_prob else "not_english"


@functools.cache
def make_english_scorer(backend: str) -> Callable[[str], float]:
    """A function text -> probability that the text is English, from langid.py or lingua (made once per
    process: langid takes seconds to unpack its model)."""
    if backend == "langid":
        from langid.langid import LanguageIdentifier, model

        ident = LanguageIdentifier.from_modelstring(model, norm_probs=True)

        def langid_prob(text: str) -> float:
            lang, prob = ident.classify(text)
            return float(prob) if lang == "en" else 0.0

        return langid_prob
    if backend == "lingua":
        from lingua import Language, LanguageDetectorBuilder

        detector = LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()
        return lambda text: float(detector.compute_language_confidence(text, Language.ENGLISH))
    raise ValueError(f"language backend must be one of {LANG_BACKENDS}, got {backend!r}")


def pair_key(pair: Pair) -> int:
    """64-bit key of a pair's normalized (query, passage): equal keys are exact duplicates."""
    return text_key(normalize_text(pair.query) + "\x1f" + normalize_text(pair.passage))


class ExactDedup:
    """Drop a pair whose normalized (query, passage) was seen before."""

    name = "exact_dedup"

    def __init__(self) -> None:
        self.seen: set[int] = set()

    def __call__(self, pair: Pair) -> str | None:
        key = pair_key(pair)
        if key in self.seen:
            return "exact_duplicate"
        self.seen.add(key)
        return None


class NearDedup:
    """Drop a pair whose passage is a near duplicate (MinHash Jaccard estimate >= threshold over word
    shingles) of an earlier kept passage, using datasketch's LSH index."""

    name = "near_dedup"

    def __init__(self, threshold: float = 0.9, num_perm: int = 64, shingle_words: int = 3) -> None:
        from datasketch import MinHash, MinHashLSH

        self._minhash = MinHash
        template = MinHash(num_perm=num_perm, seed=1)
        self._perms, self._scheme = template.permutations, template.scheme  # made once: the slow part
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.num_perm, self.k = num_perm, max(1, shingle_words)
        self._n = 0

    def signature(self, text: str) -> Any:
        words = normalize_text(text).split()
        grams = {" ".join(words[i:i + self.k]) for i in range(max(1, len(words) - self.k + 1))}
        m = self._minhash(num_perm=self.num_perm, seed=1, permutations=self._perms, scheme=self._scheme)
        m.update_batch([g.encode("utf-8") for g in grams])
        return m

    def __call__(self, pair: Pair) -> str | None:
        from datasketch import LeanMinHash

        sig = self.signature(pair.passage)
        if self.lsh.query(sig):
            return "near_duplicate"
        self.lsh.insert(self._n, LeanMinHash(sig))
        self._n += 1
        return None


def enabled_steps(cfg: RuleConfig) -> list[str]:
    """Names of the steps `cfg` switches on, in their fixed order (a subset of STEPS)."""
    on = {"length": True, "decontaminate": cfg.decontaminate, "language": cfg.english,
          "exact_dedup": cfg.exact_dedup, "near_dedup": cfg.near_dedup}
    return [name for name in STEPS if on[name]]


def make_check(name: str, cfg: RuleConfig) -> Check:
    """The one check called `name` (one of STEPS), made from `cfg`; other pipelines (e5kit.scale) wrap these."""
    if name == "length":
        return LengthFilter(cfg)
    if name == "decontaminate":
        return Decontaminator(eval_folders(cfg), min_chars=cfg.decon_min_chars)
    if name == "language":
        return LanguageFilter(cfg.lang_backend, cfg.min_lang_prob)
    if name == "exact_dedup":
        return ExactDedup()
    if name == "near_dedup":
        return NearDedup(cfg.near_threshold, cfg.num_perm, cfg.shingle_words)
    raise ValueError(f"unknown rule step {name!r}; steps: {', '.join(STEPS)}")


def make_filters(cfg: RuleConfig) -> tuple[list[Check], Decontaminator | None]:
    """The enabled filters in their fixed order, and the decontaminator (for its summary)."""
    steps = [make_check(name, cfg) for name in enabled_steps(cfg)]
    decon = next((s for s in steps if isinstance(s, Decontaminator)), None)
    return steps, decon


def eval_folders(cfg: RuleConfig) -> list[Path]:
    """The evaluation folders to decontaminate against: the default sets (unless switched off) plus
    `eval_dirs`, each once."""
    folders = [*(default_eval_dirs() if cfg.default_eval_sets else []), *map(Path, cfg.eval_dirs or [])]
    unique: dict[str, Path] = {}
    for folder in folders:
        unique.setdefault(os.path.realpath(folder), folder)
    return list(unique.values())


@dataclass
class FilterReport:
    """Counts of a filtering run: per step (in / dropped / out), per reason, per source; a few dropped examples."""

    input: int = 0
    kept: int = 0
    steps: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    by_source: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, list[dict[str, str]]] = field(default_factory=lambda: defaultdict(list))

    def to_dict(self, step_names: Sequence[str]) -> dict[str, Any]:
        remaining, steps = self.input, []
        for name in step_names:
            dropped = sum(self.steps[name].values())
            steps.append({"filter": name, "in": remaining, "dropped": dropped, "out": remaining - dropped,
                          "reasons": dict(self.steps[name])})
            remaining -= dropped
        return {"input": self.input, "kept": self.kept, "steps": steps,
                "by_source": {s: dict(c) for s, c in sorted(self.by_source.items())},
                "examples": dict(self.examples)}

    def record(self, pair: Pair, step: str, reason: str | None, examples: int = 3) -> None:
        """Count one pair that `step` dropped for `reason` (None: kept), with a few examples per reason."""
        if reason is None:
            self.kept += 1
            self.by_source[pair.source]["kept"] += 1
            return
        self.steps[step][reason] += 1
        self.by_source[pair.source][reason] += 1
        # no examples of evaluation text: the report must not carry it around
        if not reason.startswith("eval_") and len(self.examples[reason]) < examples:
            self.examples[reason].append({"query": pair.query[:200], "passage": pair.passage[:300],
                                          "source": pair.source})

    def raw(self) -> dict[str, Any]:
        """The counts as plain JSON, to be summed with `add` (reports of many workers make one)."""
        return {"input": self.input, "kept": self.kept,
                "steps": {k: dict(v) for k, v in self.steps.items()},
                "by_source": {k: dict(v) for k, v in self.by_source.items()}, "examples": dict(self.examples)}

    def add(self, raw: dict[str, Any], examples: int = 3) -> None:
        """Add the counts of another report's `raw()`."""
        self.input += int(raw["input"])
        self.kept += int(raw["kept"])
        for key, mine in (("steps", self.steps), ("by_source", self.by_source)):
            for name, counts in raw[key].items():
                mine[name].update(counts)
        for reason, items in raw["examples"].items():
            self.examples[reason].extend(items[:max(0, examples - len(self.examples[reason]))])


def one_blas_thread() -> Any:
    """langid's per-text matrix product is tiny; multi-threaded BLAS only adds contention (10x slower here)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def filter_rules(src: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], out: str | os.PathLike[str],
                 cfg: RuleConfig | None = None, *, output: OutputSettings | None = None,
                 **output_options: Any) -> dict[str, Any]:
    """Stream the pairs under `src` (one or more folders) through the rule filters into shards under `out`;
    returns (and writes to `out/report-rules.json`) the report. Dedup state is global to one run, so with
    `part` only the shard files of that part are deduplicated among themselves. Malformed input records are
    skipped, counted (report `bad_records`) and listed in `<prefix>.bad_records.log`; more than
    `max_bad_fraction` of them stops the run."""
    from tqdm.auto import tqdm

    from e5kit.data.build import parse_part, part_prefix

    o = with_options(OutputSettings, output, output_options)
    cfg = cfg or RuleConfig()
    part_t = parse_part(o.part)
    srcs = [src] if isinstance(src, (str, os.PathLike)) else list(src)
    listed = [(k, s) for k, folder in enumerate(srcs) for s in list_shards(folder)][part_t[0]::part_t[1]]
    groups = [[s for k, s in listed if k == j] for j in range(len(srcs))]
    groups = [g for g in groups if g]
    if any(Path(out).resolve() == Path(s).resolve() for s in srcs):
        raise ValueError(f"output folder {out} must differ from the input folders")
    prefix = part_prefix(part_t)
    bad = BadRecords(o.max_bad_fraction, bad_log_path(out, prefix), what="pair records")
    # one stream per input folder, mixed by size, so the output is not one source after another
    pairs = interleave([chain.from_iterable(iter_shard(s, bad) for s in g) for g in groups],
                       [max(1, sum(s.stat().st_size for s in g)) for g in groups])
    steps, decon = make_filters(cfg)
    names = [s.name for s in steps]  # type: ignore[attr-defined]
    report = FilterReport()
    bar = tqdm(unit="pair", desc="rule filters", disable=o.show_progress is False)
    with one_blas_thread(), PairWriter(out, fmt=o.fmt, shard_bytes=o.shard_bytes, prefix=prefix, resume=False,
                    info={"from": [str(s) for s in srcs], "filters": names}) as writer:
        for pair in pairs:
            report.input += 1
            report.by_source[pair.source]["input"] += 1
            reason, name = None, ""
            for step in steps:
                reason = step(pair)
                if reason:
                    name = step.name  # type: ignore[attr-defined]
                    break
            report.record(pair, name, reason, cfg.examples_per_reason)
            if reason is None:
                writer.write(pair)
            bar.update(1)
        bad_summary = bad.finish()
    bar.close()
    result = report.to_dict(names)
    result["bad_records"] = bad_summary
    result["config"] = asdict(cfg)
    if decon is not None:
        result["decontamination"] = decon.summary()
    suffix = "" if part_t[1] == 1 else f"-part{part_t[0]:03d}of{part_t[1]:03d}"
    atomic_write_json(Path(out) / f"report-rules{suffix}.json", result)
    return result
