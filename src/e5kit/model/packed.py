"""BERT / XLM-RoBERTa forward on packed tokens: no matmul, norm or activation is spent on padding.

The Hugging Face model pads every batch to its longest text and runs all layers on the pad
positions too. Here the real tokens of a batch are concatenated into one (N, H) matrix; linears,
LayerNorm and GELU see only those N rows. Only attention needs per-text structure, and it gets it
in one of two ways:

- ``padded``: scatter q/k/v into a (B, heads, T, d) buffer, SDPA with a key mask, gather back.
  With length-sorted batches T is tight, so the waste is confined to attention. Works everywhere.
- ``jagged``: nested (jagged) tensors, so SDPA runs variable-length kernels (flash / memory-
  efficient on CUDA) with no padding at all.

On x86-64 CPUs ``padded`` attention runs on e5kit's own variable-length kernels instead (no padding either;
model/native_attention.py): bf16 where the CPU has AMX, fp32 where it has AVX-512, once built and checked.

The weights are the checkpoint's own (Q, K and V fused into one matmul); in fp32 the result equals
the Hugging Face model up to summation order (max |diff| ~1e-6). RoBERTa-style encoders (XLM-R, so
multilingual-e5) have the same layers; only their position ids differ: padding_idx + 1 + position,
counting non-padding tokens only, as transformers' `create_position_ids_from_input_ids` does.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from e5kit.model import native_attention

ATTENTION_MODES = ("padded", "jagged")
# model_type -> whether positions are offset RoBERTa-style (padding_idx + 1 + non-padding count)
PACKED_TYPES = {"bert": False, "roberta": True, "xlm-roberta": True, "camembert": True}


def supports_packed(hf_model: torch.nn.Module) -> str | None:
    """None when `hf_model` can run packed, else the reason why not (the caller falls back)."""
    cfg = getattr(hf_model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) not in PACKED_TYPES:
        return (f"model type {getattr(cfg, 'model_type', None)!r} is not one of "
                f"{', '.join(repr(t) for t in PACKED_TYPES)}")
    if getattr(cfg, "position_embedding_type", "absolute") not in (None, "absolute"):
        return f"position_embedding_type {cfg.position_embedding_type!r} is not 'absolute'"
    if getattr(cfg, "hidden_act", "gelu") != "gelu":
        return f"hidden_act {cfg.hidden_act!r} is not 'gelu'"
    if getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", False):
        return "decoder / cross-attention BERT"
    emb = getattr(hf_model, "embeddings", None)
    if not all(hasattr(emb, a) for a in ("word_embeddings", "position_embeddings", "token_type_embeddings")):
        return "embeddings lack word, position or token-type tables"
    return None


class PackedBatch:
    """Index bookkeeping for one batch of token-id lists, built once and shared by all layers."""

    def __init__(self, ids: Sequence[Sequence[int]], device: torch.device, *, split: bool = True) -> None:
        lengths = [len(x) for x in ids]
        if not lengths or min(lengths) < 1:
            raise ValueError("every sequence needs at least one token")
        self.batch = len(lengths)
        self.width = max(lengths)
        self.shortest = min(lengths)
        self.tokens = sum(lengths)
        flat = np.concatenate([np.asarray(seq, dtype=np.int64) for seq in ids])
        self.input_ids = torch.from_numpy(flat).to(device, non_blocking=True)  # (N,)
        self.lengths = torch.tensor(lengths, dtype=torch.long)
        offsets = torch.zeros(len(lengths) + 1, dtype=torch.long)
        torch.cumsum(self.lengths, 0, out=offsets[1:])
        seq_id = torch.repeat_interleave(torch.arange(len(lengths)), self.lengths)  # (N,)
        positions = torch.arange(self.tokens) - offsets[:-1][seq_id]  # (N,) position within its text
        self.offsets = offsets.to(device)
        self.seq_id = seq_id.to(device)
        self.positions = positions.to(device)
        # Length-sorted batches (longest first) often start with texts cut at the limit: those need no
        # padding at all. `head` texts of full width run attention as they are; only the `tail` is scattered.
        self.head = next((i for i, n in enumerate(lengths) if n != self.width), len(lengths))
        self.tail = PackedBatch(ids[self.head:], device, split=False) if split and 0 < self.head < self.batch else None
        # The padded (B, T) layout for attention, needed only when the batch is padded and not split.
        self.slot = self.key_mask = self.pad_slot = None
        if self.tail is None and self.batch * self.width != self.tokens:
            self.slot = (seq_id * self.width + positions).to(device)  # (N,) row in the (B*T) padded layout
            mask = torch.arange(self.width)[None, :] < self.lengths[:, None]  # (B, T)
            self.key_mask = mask[:, None, None, :].to(device)  # (B, 1, 1, T) True = attend
            self.pad_slot = (~mask).flatten().nonzero().squeeze(1).to(device)  # (B*T - N,)
        self.lengths = self.lengths.to(device)


class PackedBert(torch.nn.Module):
    """A BertModel's (or XLMRobertaModel's) encoder rebuilt to run on packed tokens.

    `fuse` (CPU, fp32/bf16) lets oneDNN apply bias, GELU and the residual adds inside its GEMMs, on
    weights reordered once at construction (see `fused_cpu_weights`).
    """

    def __init__(self, hf_model: torch.nn.Module, *, attention: str = "padded", fuse: bool = True) -> None:
        super().__init__()
        reason = supports_packed(hf_model)
        if reason:
            raise ValueError(f"packed BERT cannot run this model: {reason}")
        if attention not in ATTENTION_MODES:
            raise ValueError(f"attention {attention!r} is not one of {', '.join(ATTENTION_MODES)}")
        cfg = hf_model.config
        self.attention = attention
        self.heads = int(cfg.num_attention_heads)
        self.hidden = int(cfg.hidden_size)
        self.head_dim = self.hidden // self.heads
        self.eps = float(cfg.layer_norm_eps)
        emb = hf_model.embeddings
        self.word = emb.word_embeddings
        self.position = emb.position_embeddings
        self.register_buffer("type0", emb.token_type_embeddings.weight[0].detach().clone())
        # RoBERTa-style: positions start at padding_idx + 1 and skip padding tokens
        self.padding_idx = int(emb.padding_idx) if PACKED_TYPES[cfg.model_type] else None
        self.emb_norm = emb.LayerNorm
        self.layers = torch.nn.ModuleList(_PackedLayer(layer, self.heads, fuse) for layer in hf_model.encoder.layer)

    def forward(self, batch: PackedBatch) -> torch.Tensor:
        """Last hidden states of the real tokens only, (N, H) in the model dtype."""
        x = self.word(batch.input_ids) + self.position(self.position_ids(batch)) + self.type0  # (N, H)
        x = self.emb_norm(x)
        n = x.shape[0]
        if self.layers and self.layers[0].fused(x):
            # oneDNN builds (and caches) a kernel per row count: round it up so that few distinct ones occur
            x = F.pad(x, (0, 0, 0, bucket_rows(n) - n))  # zero rows, kept out of attention, dropped below
        for layer in self.layers:
            x = layer(x, batch, self.attention)
        return x[:n]

    def position_ids(self, batch: PackedBatch) -> torch.Tensor:
        """(N,) position ids: BERT's 0, 1, ... per text; RoBERTa's padding_idx + count of non-padding so far."""
        if self.padding_idx is None:
            return batch.positions
        real = (batch.input_ids != self.padding_idx).to(torch.long)  # (N,)
        counts = torch.cumsum(real, 0)
        before = F.pad(counts, (1, 0))[batch.offsets[:-1]]  # (B,) real tokens before each text starts
        return (counts - before[batch.seq_id]) * real + self.padding_idx

class _PackedLayer(torch.nn.Module):
    """One BERT layer: fused QKV, attention, output projection, FFN, post-LayerNorms."""

    def __init__(self, layer: torch.nn.Module, heads: int, fuse: bool = True) -> None:
        super().__init__()
        att = layer.attention
        q, k, v = att.self.query, att.self.key, att.self.value
        hidden = q.weight.shape[1]
        self.qkv = torch.nn.Linear(hidden, 3 * hidden, device=q.weight.device, dtype=q.weight.dtype)
        with torch.no_grad():
            self.qkv.weight.copy_(torch.cat([q.weight, k.weight, v.weight]))
            self.qkv.bias.copy_(torch.cat([q.bias, k.bias, v.bias]))
        self.out = att.output.dense
        self.norm1 = att.output.LayerNorm
        self.up = layer.intermediate.dense
        self.down = layer.output.dense
        self.norm2 = layer.output.LayerNorm
        self.heads = heads
        self.head_dim = hidden // heads
        # CPU fp32/bf16: the four weights reordered once into oneDNN's blocked layout (see fused_cpu_weights)
        self.cpu_weights = fused_cpu_weights([self.qkv, self.out, self.up, self.down]) if fuse else None

    def attend(self, qkv: torch.Tensor, batch: PackedBatch, mode: str) -> torch.Tensor:
        """Self-attention of packed (N, 3H) projections -> (N, H)."""
        n, h, d = qkv.shape[0], self.heads, self.head_dim
        if mode == "padded" and not qkv.requires_grad and native_attention.usable(d, qkv.dtype, qkv.device):
            return native_attention.attention(qkv, batch.offsets, h)  # packed rows in and out: no padding at all
        if mode == "jagged":
            parts = [p.contiguous() for p in qkv.view(n, 3, h, d).unbind(1)]  # 3 x (N, h, d)
            with warnings.catch_warnings():  # "nested tensors are a prototype" on every CPU call
                warnings.simplefilter("ignore", UserWarning)
                q, k, v = (torch.nested.nested_tensor_from_jagged(
                    p, batch.offsets, min_seqlen=batch.shortest, max_seqlen=batch.width).transpose(1, 2)
                    for p in parts)  # lengths given, so building them needs no device sync
                out = F.scaled_dot_product_attention(q, k, v)  # (B, h, j, d) jagged
            return out.transpose(1, 2).values().reshape(n, h * d)
        b, t = batch.batch, batch.width
        if batch.tail is not None:  # full-width head as it is, padded attention for the shorter tail only
            cut = batch.head * t
            return torch.cat([self.attend_unpadded(qkv[:cut], batch.head, t),
                              self.attend(qkv[cut:], batch.tail, mode)])
        if batch.slot is None:  # every text as long as the longest: packed rows are already (B, T)
            return self.attend_unpadded(qkv, b, t)
        buf = qkv.new_empty(b * t, 3 * h * d)
        buf.index_fill_(0, batch.pad_slot, 0)  # finite keys/values under the mask (0 x NaN would poison the sum)
        buf.index_copy_(0, batch.slot, qkv)  # index_copy_/index_select: ~25-45% faster than []-indexing here
        q, k, v = buf.view(b, t, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, T, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=batch.key_mask)  # (B, h, T, d)
        return out.transpose(1, 2).reshape(b * t, h * d).index_select(0, batch.slot)

    def attend_unpadded(self, qkv: torch.Tensor, b: int, t: int) -> torch.Tensor:
        """Self-attention of (b * t, 3H) projections of b texts all t tokens long -> (b * t, H)."""
        h, d = self.heads, self.head_dim
        q, k, v = qkv.view(b, t, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, T, d)
        return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b * t, h * d)

    def fused(self, x: torch.Tensor) -> bool:
        """Whether `x` runs through oneDNN's fused linears (CPU, the prepacked dtype, no autograd)."""
        w = self.cpu_weights
        return (w is not None and x.dtype == w[0].dtype and x.device.type == "cpu" and not x.requires_grad
                and type(self.up) is torch.nn.Linear)  # not after quantize_dynamic swapped the layers

    def forward(self, x: torch.Tensor, batch: PackedBatch, mode: str) -> torch.Tensor:
        """(R, H) -> (R, H); rows past batch.tokens are padding (see PackedBert.forward), kept finite."""
        n, extra = batch.tokens, x.shape[0] - batch.tokens
        if self.fused(x):
            # oneDNN applies bias, GELU and the residual adds inside its GEMMs: no extra passes over (N, 4H)
            op, w = _LINEAR_POINTWISE, self.cpu_weights
            a = self.attend(op(x, w[0], self.qkv.bias, "none", [], "")[:n], batch, mode)
            a = F.pad(a, (0, 0, 0, extra)) if extra else a
            x = self.norm1(op.binary(a, x, w[1], self.out.bias, "add"))
            y = op(x, w[2], self.up.bias, "gelu", [], "none")  # algorithm "none": the exact (erf) GELU
            return self.norm2(op.binary(y, x, w[3], self.down.bias, "add"))
        a = self.attend(self.qkv(x)[:n], batch, mode)
        a = F.pad(a, (0, 0, 0, extra)) if extra else a
        x = self.norm1(self.out(a) + x)
        y = self.down(F.gelu(self.up(x)))
        return self.norm2(y + x)


def _find_linear_pointwise():
    """oneDNN's fused linear + post-op (the op torch.compile uses on CPU), or None in builds without it."""
    try:
        return torch.ops.mkldnn._linear_pointwise if torch.backends.mkldnn.is_available() else None
    except (AttributeError, RuntimeError):
        return None


_LINEAR_POINTWISE = _find_linear_pointwise()
FUSED_DTYPES = (torch.float32, torch.bfloat16)


def bucket_rows(n: int) -> int:
    """`n` rounded up to a step of 1/16 of the power of two below it (at least 16): at most n/16 or 15 extra rows.

    oneDNN compiles and caches a kernel for every new input shape; the row count of a packed batch
    changes with every batch, and the cache then grows RSS by ~0.4 MB per shape (measured: +440 MB over
    100k streamed texts). Buckets keep the shapes to ~16 per doubling of n.
    """
    step = max(16, (1 << max(n.bit_length() - 1, 0)) // 16)
    return -(-n // step) * step


# oneDNN picks the weight layout for this many rows; 16,384 and 4,096 (the GPU and CPU token budgets) gave the same
# GEMM speed at 4,096 rows (bf16 and fp32, Xeon with AMX), so one layout serves both.
PREPACK_ROWS = 16384


def fused_cpu_weights(linears: Sequence[torch.nn.Module]) -> list[torch.Tensor] | None:
    """The linears' weights reordered once for oneDNN's fused CPU linear, or None where it cannot run.

    None (the plain path) off CPU, for dtypes other than fp32/bf16, for quantized layers, or without
    oneDNN. Reordering once saves a weight reorder on every call; fusing saves the passes that add the
    bias, apply GELU and add the residual. Measured on the 2-vCPU dev VM (benchmarks/bench_fusion.py):
    1.07-1.28x per forward on all-MiniLM-L6-v2 and the BERT-base shape, fp32 and bf16; max |diff| of
    the hidden states to the plain path ~6e-6 in fp32. Costs one extra copy of the linear weights, and
    is a snapshot: weights changed in place afterwards are not seen (build a new PackedBert).
    """
    if _LINEAR_POINTWISE is None:
        return None
    weights = [getattr(m, "weight", None) for m in linears]
    if any(type(m) is not torch.nn.Linear for m in linears) or any(
            w is None or w.device.type != "cpu" or w.dtype not in FUSED_DTYPES for w in weights):
        return None
    try:
        return [torch.ops.mkldnn._reorder_linear_weight(w.detach(), PREPACK_ROWS) for w in weights]
    except (RuntimeError, AttributeError):  # an oneDNN build without this dtype's kernels
        return None


def packed_mean_pool(hidden: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """Mean over each text's tokens of packed (N, H) states -> (B, H) float32."""
    sums = torch.zeros(batch.batch, hidden.shape[1], dtype=torch.float32, device=hidden.device)
    sums.index_add_(0, batch.seq_id, hidden.float())
    return sums / batch.lengths[:, None].to(torch.float32)


def packed_cls_pool(hidden: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """First token of each text -> (B, H) float32."""
    return hidden[batch.offsets[:-1]].float()


def packed_last_pool(hidden: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """Last token of each text -> (B, H) float32."""
    return hidden[batch.offsets[1:] - 1].float()


PACKED_POOLERS = {"mean": packed_mean_pool, "cls": packed_cls_pool, "last": packed_last_pool}
