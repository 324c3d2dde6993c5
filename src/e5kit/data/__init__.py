"""Weak (query, passage) pairs the E5 way: pair shards, source builders, rule filters, decontamination and the
consistency filter. Heavy libraries are imported inside the functions that need them."""

from e5kit.data.pairs import Pair, normalize_text, pair_id
from e5kit.data.shards import PairWriter, iter_pairs, list_shards

__all__ = ["Pair", "PairWriter", "iter_pairs", "list_shards", "normalize_text", "pair_id"]
