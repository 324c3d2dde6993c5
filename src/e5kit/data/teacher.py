"""A cross-encoder teacher: scores (query, passage) pairs with any transformers sequence-classification model,
for distillation (E5's fine-tuning stage; the SimLM recipe distils a cross-encoder re-ranker into the
bi-encoder). Pairs are cut into batches by a token budget (sorted by length, encode/batching.py) and run in
bf16 where the hardware does it fast (a CUDA GPU with bf16, or a CPU with AVX512-BF16/AMX), else fp32.

The score of a pair is the model's relevance logit: the single logit of a 1-label model (MS MARCO
cross-encoders), or logit[1] - logit[0] (the log-odds of "relevant") of a 2-label one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from e5kit.errors import ModelLoadError

TEACHER_PRECISIONS = ("auto", "fp32", "bf16", "fp16")


@dataclass(frozen=True)
class TeacherSettings:
    """How the teacher runs: device (None = CUDA when present), precision ("auto" = bf16 where fast), the
    token length of one (query, passage) input, and the padded-token budget of one batch (None: e5kit's
    default for the device, 4,096 on CPU and 16,384 on GPU; on a CPU with AMX a 4,096-token budget scored
    1.38x (bf16) and 1.19x (fp32) the pairs/s of 16,384, all-MiniLM-L6-v2 as a 1-label cross-encoder)."""

    device: str | None = None
    precision: str = "auto"
    max_length: int = 512
    batch_tokens: int | None = None


def _dtype(precision: str, device: Any) -> Any:
    import torch

    from e5kit.encode.precision import cpu_has_fast_bf16

    if precision not in TEACHER_PRECISIONS:
        raise ValueError(f"teacher precision {precision!r} is not one of {', '.join(TEACHER_PRECISIONS)}")
    if precision == "auto":
        fast_bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else cpu_has_fast_bf16()
        precision = "bf16" if fast_bf16 else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("teacher precision 'fp16' is for GPUs; on CPU use 'bf16' or 'fp32'")
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


class CrossEncoderTeacher:
    """`score(queries, passages)` -> one relevance score per pair (higher = more relevant)."""

    def __init__(self, name: str, settings: TeacherSettings | None = None) -> None:
        from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

        from e5kit.encode.batching import batch_budget
        from e5kit.encode.precision import resolve_device

        self.name, self.settings = str(name), settings or TeacherSettings()
        s = self.settings
        self.device = resolve_device(s.device)
        self.batch_tokens = batch_budget(self.device.type, s.batch_tokens, name="batch_tokens")
        if s.max_length < 8 or self.batch_tokens < s.max_length:
            raise ValueError(f"teacher max_length must be >= 8 and batch_tokens >= max_length, got "
                             f"{s.max_length} and {self.batch_tokens}")
        try:
            config = AutoConfig.from_pretrained(self.name)
        except Exception as exc:
            raise ModelLoadError(f"teacher {self.name!r}: no model config could be loaded ({exc})") from exc
        archs = list(getattr(config, "architectures", None) or [])
        if not any(a.endswith("ForSequenceClassification") for a in archs):
            raise ModelLoadError(f"teacher {self.name!r} is not a sequence-classification model (architectures: "
                                 f"{', '.join(archs) or 'none'}); give a cross-encoder re-ranker, e.g. a "
                                 "*ForSequenceClassification checkpoint trained on MS MARCO")
        if config.num_labels not in (1, 2):
            raise ModelLoadError(f"teacher {self.name!r} has {config.num_labels} labels; a relevance "
                                 "cross-encoder has 1 (a score) or 2 (not relevant / relevant)")
        self.dtype = _dtype(s.precision, self.device)
        self.tokenizer = AutoTokenizer.from_pretrained(self.name, use_fast=True)
        self.model = AutoModelForSequenceClassification.from_pretrained(self.name, dtype=self.dtype)
        self.model.to(self.device).eval()

    def score(self, queries: Sequence[str], passages: Sequence[str]) -> list[float]:
        """Relevance scores of (queries[i], passages[i]), computed in token-budget batches."""
        import torch

        from e5kit.encode.batching import TokenBudgetBatcher

        if len(queries) != len(passages):
            raise ValueError(f"got {len(queries)} queries and {len(passages)} passages")
        if not queries:
            return []
        enc = self.tokenizer(list(queries), list(passages), truncation=True, max_length=self.settings.max_length)
        lengths = [len(ids) for ids in enc["input_ids"]]
        out = [0.0] * len(lengths)
        for batch in TokenBudgetBatcher(max_tokens=self.batch_tokens).batches(lengths):
            rows = self.tokenizer.pad({k: [enc[k][i] for i in batch] for k in enc}, return_tensors="pt")
            with torch.inference_mode():
                logits = self.model(**{k: v.to(self.device) for k, v in rows.items()}).logits.float()
            scores = logits[:, 0] if logits.shape[1] == 1 else logits[:, 1] - logits[:, 0]
            for i, value in zip(batch, scores.tolist(), strict=True):
                out[i] = float(value)
        return out
