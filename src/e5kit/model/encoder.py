"""The encoder: a Hugging Face model (BERT-family encoder or Mistral-style decoder) plus pooling and norm."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch

from e5kit.errors import ModelLoadError
from e5kit.model.checkpoint import Checkpoint
from e5kit.model.pooling import POOLERS, l2_normalize
from e5kit.model.tokenize import TextTokenizer, append_eos

log = logging.getLogger(__name__)


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars while loading or saving: one per call is noise."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()


def check_remote_code(ckpt: Checkpoint, trust_remote_code: bool) -> None:
    """Refuse a checkpoint that ships its own Python code unless the user said to trust it."""
    if ckpt.remote_code and not trust_remote_code:
        raise ModelLoadError(
            f"model {ckpt.name!r} needs trust_remote_code: {ckpt.remote_code}. Loading it would run that code "
            f"on this machine with your rights, so e5kit does so only when asked: read the code in {ckpt.path}, "
            "then pass E5(..., trust_remote_code=True) or --trust-remote-code."
        )


def load_hf_model(ckpt: Checkpoint, *, trust_remote_code: bool = False) -> torch.nn.Module:
    """transformers AutoModel from the checkpoint folder (SDPA attention, also for decoders); pickle weights
    only with weights_only=True; checkpoint code only with `trust_remote_code`."""
    from transformers import AutoModel

    check_remote_code(ckpt, trust_remote_code)
    if ckpt.weights_file.startswith("pytorch_model"):
        log.warning(
            "model %r: loading pickle weights %s safely (torch.load weights_only=True); "
            "E5.save() writes model.safetensors", ckpt.name, ckpt.weights_file,
        )
    try:
        with quiet_transformers():
            model = AutoModel.from_pretrained(
                ckpt.path, attn_implementation="sdpa", trust_remote_code=bool(ckpt.remote_code),
                use_safetensors=ckpt.weights_file.endswith(("safetensors", "safetensors.index.json")),
            )
    except Exception as exc:
        raise ModelLoadError(
            f"model {ckpt.name!r}: weights in {ckpt.path / ckpt.weights_file} could not be loaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}). {ckpt.fix}"
        ) from exc
    return model.eval()


def load_tokenizer(ckpt: Checkpoint, max_length: int | None = None, *,
                   trust_remote_code: bool = False) -> TextTokenizer:
    """The checkpoint's fast tokenizer, truncating at `max_length` (default: the checkpoint's limit).

    A decoder's tokenizer is made to end every input with EOS (as e5-mistral's card appends it), so
    that encoding, token-id framing and a saved copy all agree.
    """
    from transformers import AutoTokenizer

    check_remote_code(ckpt, trust_remote_code)
    try:
        hf = AutoTokenizer.from_pretrained(ckpt.path, use_fast=True, trust_remote_code=bool(ckpt.remote_code))
        if ckpt.is_decoder:
            append_eos(hf)
    except Exception as exc:
        raise ModelLoadError(
            f"model {ckpt.name!r}: tokenizer files in {ckpt.path} could not be loaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}). {ckpt.fix}"
        ) from exc
    return TextTokenizer(hf, max_length or ckpt.max_seq_length)


BACKENDS = ("auto", "packed", "jagged", "hf")


def quantize_int8(module: torch.nn.Module) -> torch.nn.Module:
    """Linear layers of `module` dynamically quantized to int8 (per-channel weights, CPU only)."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    spec = {name: per_channel_dynamic_qconfig for name, sub in module.named_modules()
            if isinstance(sub, torch.nn.Linear)}
    with warnings.catch_warnings():  # torch points users at torchao; the eager API still works
        warnings.simplefilter("ignore")
        return quantize_dynamic(module, spec, inplace=False)


_WARNED_SLOW: set[str] = set()


def _is_causal(model: torch.nn.Module) -> bool:
    from e5kit.model.checkpoint import DECODER_FAMILY

    return getattr(model.config, "model_type", None) in DECODER_FAMILY


def _warn_slow_decoder(model: torch.nn.Module, device: torch.device) -> None:
    """Say once per process that a multi-billion-parameter decoder on CPU is slow (it works)."""
    if device.type != "cpu" or "cpu" in _WARNED_SLOW:
        return
    _WARNED_SLOW.add("cpu")
    params = sum(p.numel() for p in model.parameters())
    log.warning("a %s decoder (%.2fB parameters) runs on CPU: this works but is slow (a 7B model embeds a "
                "few texts per second); use a GPU with precision bf16 or fp16 for real corpora",
                model.config.model_type, params / 1e9)


class TransformerEncoder:
    """Runs batches of token ids through the model and pools them to (B, H) float32 embeddings.

    `backend` picks how: ``packed`` (BERT and XLM-R; no compute on padding except inside attention),
    ``jagged`` (packed with variable-length attention via nested tensors; best on CUDA), ``hf``
    (the Hugging Face model on right-padded batches; any architecture), ``auto`` (packed when the
    model supports it, else hf). `int8` quantizes the Linear layers (CPU). `model` stays the plain
    Hugging Face module, so it can be saved.
    """

    def __init__(self, model: torch.nn.Module, pad_id: int, pooling: str, device: torch.device,
                 dtype: torch.dtype, *, backend: str = "auto", int8: bool = False) -> None:
        from e5kit.model.packed import PACKED_POOLERS, PackedBert, supports_packed

        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
        self.model = model.to(device=device, dtype=dtype)
        self.pad_id = pad_id
        self.pool = POOLERS[pooling]
        self.device = device
        self.dtype = dtype
        reason = supports_packed(self.model)
        if backend in ("packed", "jagged") and reason:
            raise ValueError(f"backend {backend!r} needs a BERT or XLM-RoBERTa encoder: {reason}; use backend='hf'")
        self.backend = ("hf" if reason else "packed") if backend == "auto" else backend
        if _is_causal(self.model):
            _warn_slow_decoder(self.model, device)
        self.runner: torch.nn.Module = self.model
        if self.backend != "hf":
            self.runner = PackedBert(self.model, attention="jagged" if self.backend == "jagged" else "padded",
                                     fuse=not int8)  # int8 swaps the linears for quantized ones below
            self.packed_pool = PACKED_POOLERS[pooling]
        if int8:
            if device.type != "cpu":
                raise ValueError(f"int8 runs on CPU only, not on {device}")
            self.runner = quantize_int8(self.runner)
        self.int8 = int8
        self.runner.eval()
        if self.backend == "packed" and device.type == "cpu":
            self.attention()  # builds and checks e5kit's attention kernel now, not inside the first request

    def attention(self) -> str:
        """Which attention runs: 'native' (e5kit's kernels: bf16 on AMX, fp32 on AVX-512/AVX2), 'sdpa-jagged' or
        'sdpa'."""
        from e5kit.model import native_attention

        if self.backend == "jagged":
            return "sdpa-jagged"
        head_dim = self.model.config.hidden_size // self.model.config.num_attention_heads
        if self.backend == "packed" and native_attention.usable(head_dim, self.dtype, self.device):
            return "native"
        return "sdpa"

    def pad(self, ids: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) input ids and attention mask, padded on the right to the longest in the batch."""
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, seq in enumerate(ids):
            input_ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
        return input_ids.to(self.device), mask.to(self.device)

    @torch.inference_mode()
    def embed(self, ids: Sequence[Sequence[int]], normalize: bool = True, *, to_cpu: bool = True) -> torch.Tensor:
        """Embeddings (B, H) as float32 (on the CPU unless to_cpu=False); pooling and norm in fp32."""
        if self.backend == "hf":
            input_ids, mask = self.pad(ids)
            hidden = self.runner(input_ids=input_ids, attention_mask=mask).last_hidden_state  # (B, T, H)
            pooled = self.pool(hidden.float(), mask)  # (B, H)
        else:
            from e5kit.model.packed import PackedBatch

            batch = PackedBatch(ids, self.device)
            pooled = self.packed_pool(self.runner(batch), batch)  # (B, H) float32
        if normalize:
            pooled = l2_normalize(pooled)
        return pooled.cpu() if to_cpu else pooled


def memory_estimate(encoder: Any, batch_tokens: int) -> dict[str, Any]:
    """Parameters and an estimate of memory in MiB: the weights as held (fused or quantized copies
    included) plus the largest activations of one batch of `batch_tokens` tokens (the FFN's (N, 4H)
    input, the residual stream, Q/K/V), in the model's dtype. An estimate, not a measurement."""
    if getattr(encoder, "model", None) is None:  # a compiled backend (OpenVINO): no torch module is held
        params = int(encoder.parameter_count)
        held = {0: params * encoder.weight_bytes}
        cfg = encoder.config
    else:
        params = sum(p.numel() for p in encoder.model.parameters())
        held = {id(t): t.numel() * t.element_size()
                for module in (encoder.model, encoder.runner)
                for t in (*module.parameters(), *module.buffers())}
        for layer in getattr(encoder.runner, "layers", []):  # oneDNN's reordered copies of the packed linears
            for w in getattr(layer, "cpu_weights", None) or []:
                held[id(w)] = w.numel() * w.element_size()
        cfg = encoder.model.config
    hidden = int(getattr(cfg, "hidden_size", 0) or 0)
    ffn = int(getattr(cfg, "intermediate_size", 0) or 4 * hidden)
    per_token = (ffn + 5 * hidden) * torch.finfo(encoder.dtype).bits // 8
    weights_mb, act_mb = sum(held.values()) / 2**20, batch_tokens * per_token / 2**20
    return {"parameters": params, "weights_mb": round(weights_mb, 3), "activations_mb": round(act_mb, 3),
            "memory_estimate_mb": round(weights_mb + act_mb, 3)}
