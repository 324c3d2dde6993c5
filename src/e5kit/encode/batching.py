"""Token-budget batching: sort by length, cut batches so padded tokens stay under a budget.

Sorting makes each batch's sequences nearly equal in length, so little compute is spent on
padding; the budget (batch size x longest sequence) keeps activation memory flat whatever the
mix of lengths. Longest batches come first so that an out-of-memory shows at once, not at the end.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from e5kit.options import positive_int

DEFAULT_MAX_TOKENS = 16384  # GPUs: big batches keep the device busy
# CPUs: 4,096 padded tokens (16 texts of 256, 8 of 512). Larger batches were slower on the CPU, not faster: their
# activations (e.g. 16,384 x 1,536 bf16 = 50 MB) exceed glibc's 32 MB mmap threshold, so every layer's fresh output
# was mapped anew and paid ~1 us per 4 KB page fault; at 4,096 they are reused from the heap. Measured on a 2-core
# Xeon with AMX (all-MiniLM-L6-v2 @256, bf16): 117 -> 149 texts/s, peak RSS 734 -> 611 MB (docs/bench-encode.md).
DEFAULT_MAX_TOKENS_CPU = 4096
DEFAULT_MAX_BATCH = 512
DEFAULT_BUDGETS = f"{DEFAULT_MAX_TOKENS_CPU} on CPU, {DEFAULT_MAX_TOKENS} on GPU"  # for help texts


def default_max_tokens(device_type: str) -> int:
    """The padded-token budget per batch that e5kit uses on this kind of device when none is given."""
    return DEFAULT_MAX_TOKENS_CPU if device_type == "cpu" else DEFAULT_MAX_TOKENS


def batch_budget(device_type: str, given: int | None = None, *, name: str = "max_tokens_per_batch") -> int:
    """The budget in force: `given` checked as a positive int, or this device's default when None."""
    return default_max_tokens(device_type) if given is None else positive_int(name, given)


@dataclass(frozen=True)
class TokenBudgetBatcher:
    """Groups sequence indices into batches whose padded size stays within `max_tokens`."""

    max_tokens: int = DEFAULT_MAX_TOKENS
    max_batch_size: int = DEFAULT_MAX_BATCH

    def __post_init__(self) -> None:
        for name in ("max_tokens", "max_batch_size"):
            value = getattr(self, name)
            positive_int(name, value)

    def batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Index lists, longest sequences first; every index appears exactly once.

        A single sequence longer than the budget still gets a batch of its own.
        """
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        out: list[list[int]] = []
        current: list[int] = []
        longest = 0
        for i in order:
            width = max(longest, lengths[i])
            if current and ((len(current) + 1) * width > self.max_tokens or len(current) >= self.max_batch_size):
                out.append(current)
                current, width = [], lengths[i]
            current.append(i)
            longest = width
        if current:
            out.append(current)
        return out
