"""BERT forward on packed tokens: no matmul, norm or activation is spent on padding.

The Hugging Face model pads every batch to its longest text and runs all layers on the pad
positions too. Here the real tokens of a batch are concatenated into one (N, H) matrix; linears,
LayerNorm and GELU see only those N rows. Only attention needs per-text structure, and it gets it
in one of two ways:

- ``padded``: scatter q/k/v into a (B, heads, T, d) buffer, SDPA with a key mask, gather back.
  With length-sorted batches T is tight, so the waste is confined to attention. Works everywhere.
- ``jagged``: nested (jagged) tensors, so SDPA runs variable-length kernels (flash / memory-
  efficient on CUDA) with no padding at all.

The weights are the checkpoint's own (Q, K and V fused into one matmul); in fp32 the result equals
the Hugging Face model up to summation order (max |diff| ~1e-6).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

ATTENTION_MODES = ("padded", "jagged")


def supports_packed(hf_model: torch.nn.Module) -> str | None:
    """None when `hf_model` can run packed, else the reason why not (the caller falls back)."""
    cfg = getattr(hf_model, "config", None)
    if cfg is None or getattr(cfg, "model_type", None) != "bert":
        return f"model type {getattr(cfg, 'model_type', None)!r} is not 'bert'"
    if getattr(cfg, "position_embedding_type", "absolute") not in (None, "absolute"):
        return f"position_embedding_type {cfg.position_embedding_type!r} is not 'absolute'"
    if getattr(cfg, "hidden_act", "gelu") != "gelu":
        return f"hidden_act {cfg.hidden_act!r} is not 'gelu'"
    if getattr(cfg, "is_decoder", False) or getattr(cfg, "add_cross_attention", False):
        return "decoder / cross-attention BERT"
    return None


class PackedBatch:
    """Index bookkeeping for one batch of token-id lists, built once and shared by all layers."""

    def __init__(self, ids: Sequence[Sequence[int]], device: torch.device) -> None:
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
        self.slot = (seq_id * self.width + positions).to(device)  # (N,) row in the (B*T) padded layout
        mask = torch.arange(self.width)[None, :] < self.lengths[:, None]  # (B, T)
        self.key_mask = mask[:, None, None, :].to(device)  # (B, 1, 1, T) True = attend
        padded = self.batch * self.width != self.tokens
        self.pad_slot = (~mask).flatten().nonzero().squeeze(1).to(device) if padded else None  # (B*T - N,)
        self.lengths = self.lengths.to(device)


class PackedBert(torch.nn.Module):
    """A BertModel's encoder rebuilt to run on packed tokens; returns pooled (B, H) float32 sums/means."""

    def __init__(self, hf_model: torch.nn.Module, *, attention: str = "padded") -> None:
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
        self.emb_norm = emb.LayerNorm
        self.layers = torch.nn.ModuleList(_PackedLayer(layer, self.heads) for layer in hf_model.encoder.layer)

    def forward(self, batch: PackedBatch) -> torch.Tensor:
        """Last hidden states of the real tokens only, (N, H) in the model dtype."""
        x = self.word(batch.input_ids) + self.position(batch.positions) + self.type0  # (N, H)
        x = self.emb_norm(x)
        for layer in self.layers:
            x = layer(x, batch, self.attention)
        return x


class _PackedLayer(torch.nn.Module):
    """One BERT layer: fused QKV, attention, output projection, FFN, post-LayerNorms."""

    def __init__(self, layer: torch.nn.Module, heads: int) -> None:
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

    def attend(self, qkv: torch.Tensor, batch: PackedBatch, mode: str) -> torch.Tensor:
        """Self-attention of packed (N, 3H) projections -> (N, H)."""
        n, h, d = qkv.shape[0], self.heads, self.head_dim
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
        if batch.pad_slot is None:  # every text as long as the longest: packed rows are already (B, T)
            q, k, v = qkv.view(b, t, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, T, d)
            return F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, h * d)
        buf = qkv.new_empty(b * t, 3 * h * d)
        buf[batch.pad_slot] = 0  # finite keys/values under the mask (0 x NaN would poison the softmax sum)
        buf[batch.slot] = qkv
        q, k, v = buf.view(b, t, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)  # 3 x (B, h, T, d)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=batch.key_mask)  # (B, h, T, d)
        return out.transpose(1, 2).reshape(b * t, h * d)[batch.slot]

    def forward(self, x: torch.Tensor, batch: PackedBatch, mode: str) -> torch.Tensor:
        a = self.attend(self.qkv(x), batch, mode)
        x = self.norm1(self.out(a) + x)
        y = self.down(F.gelu(self.up(x)))
        return self.norm2(y + x)


def packed_mean_pool(hidden: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """Mean over each text's tokens of packed (N, H) states -> (B, H) float32."""
    sums = torch.zeros(batch.batch, hidden.shape[1], dtype=torch.float32, device=hidden.device)
    sums.index_add_(0, batch.seq_id, hidden.float())
    return sums / batch.lengths[:, None].to(torch.float32)


def packed_cls_pool(hidden: torch.Tensor, batch: PackedBatch) -> torch.Tensor:
    """First token of each text -> (B, H) float32."""
    return hidden[batch.offsets[:-1]].float()


PACKED_POOLERS = {"mean": packed_mean_pool, "cls": packed_cls_pool}
