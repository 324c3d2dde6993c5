"""Initial weights for a run: any checkpoint e5kit loads (BERT, XLM-RoBERTa, Mistral-style decoders), or a
fresh random BERT of given sizes. Training pools as the init does (mean, or a decoder's last token)."""

from __future__ import annotations

from typing import Any

import torch

from e5kit.errors import ModelLoadError
from e5kit.train.config import ModelSizes, TrainConfig


def fresh_bert(sizes: ModelSizes, *, seed: int) -> tuple[torch.nn.Module, Any]:
    """A randomly initialised BertModel with the vocabulary of `sizes.tokenizer`."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    try:
        tok = AutoTokenizer.from_pretrained(sizes.tokenizer, use_fast=True)
    except Exception as exc:
        raise ModelLoadError(f"fresh.tokenizer {sizes.tokenizer!r}: no tokenizer could be loaded ({exc})") from exc
    if sizes.hidden % sizes.heads:
        raise ModelLoadError(f"fresh.hidden {sizes.hidden} is not divisible by fresh.heads {sizes.heads}")
    cfg = BertConfig(vocab_size=len(tok), hidden_size=sizes.hidden, num_hidden_layers=sizes.layers,
                     num_attention_heads=sizes.heads, intermediate_size=sizes.intermediate,
                     max_position_embeddings=sizes.max_positions, hidden_dropout_prob=sizes.dropout,
                     attention_probs_dropout_prob=sizes.dropout, pad_token_id=tok.pad_token_id or 0)
    torch.manual_seed(seed)
    return BertModel(cfg), tok  # pooler kept (frozen) so the checkpoint has every BertModel key


def initial_model(cfg: TrainConfig) -> tuple[torch.nn.Module, Any]:
    """(hf_model, hf_tokenizer) for the start of training, in fp32 and train mode."""
    if not cfg.init:
        model, tok = fresh_bert(cfg.fresh, seed=cfg.seed)
    else:
        from e5kit.model.checkpoint import read_checkpoint
        from e5kit.model.encoder import load_hf_model, load_tokenizer

        ckpt = read_checkpoint(cfg.init)
        model = load_hf_model(ckpt)
        tok = load_tokenizer(ckpt).hf  # as inference tokenizes (a decoder's EOS included); no token_type_ids asked
        tok.padding_side = "right"  # GradCache trims each chunk's padding from the right
    return model.float().train(), tok


def init_pooling(cfg: TrainConfig) -> str:
    """How training pools token states: the init checkpoint's pooling (saved with every checkpoint), else mean."""
    if not cfg.init:
        return "mean"
    from e5kit.model.checkpoint import read_checkpoint

    return read_checkpoint(cfg.init).pooling


def prepare_for_training(model: torch.nn.Module, cfg: TrainConfig) -> torch.nn.Module:
    """Freeze what E5 freezes (position embeddings) and what mean pooling never uses (the pooler)."""
    for name, param in model.named_parameters():
        if name.startswith("pooler.") or (cfg.freeze_position_embeddings and "position_embeddings" in name):
            param.requires_grad_(False)
    if cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 name
            model.activation_checkpointing_enable({"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train(cfg.dropout)
    return model


def inference_max_length(cfg: TrainConfig, model: torch.nn.Module) -> int:
    """The max_seq_length saved with checkpoints: the init checkpoint's own when it has one (fine-tuning keeps
    how the model is used: all-MiniLM-L6-v2 stays at 256), else min(512, the model's positions)."""
    positions = min(512, int(model.config.max_position_embeddings))
    if cfg.init:
        from e5kit.model.checkpoint import read_checkpoint

        return min(int(read_checkpoint(cfg.init).max_seq_length), positions)
    return positions
