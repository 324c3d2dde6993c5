"""Tiny random checkpoints of the E5 family's other architectures, built offline in the test run.

- XLM-RoBERTa (multilingual-e5): a Unigram (SentencePiece-style) tokenizer trained with the `tokenizers`
  library, special tokens `<s> <pad> </s> <unk> <mask>` at XLM-R's ids 0-4 (pad 1, so positions start at 2).
- Mistral (e5-mistral-7b-instruct): a byte-level BPE tokenizer that adds BOS only (EOS is appended by
  the card's code and by e5kit), grouped-query attention, RoPE.
Both are trained on text with Latin, CJK and Arabic script, so the tests' texts are not all unknown tokens.
"""

from __future__ import annotations

import random
from pathlib import Path

from tests.texts import mixed_texts

ARABIC = "مرحبا بالعالم هذا نص عربي قصير عن البروتين والماء والخلية".split()
CJK = "中文 字符 蛋白质 水 细胞 日本語 の テキスト 한국어 문장".split()
LATIN = ("protein cell water summit definition women eat food light dark the of and what how why query passage "
         "Übermäßig café naïve émigré résumé ĳ ñ").split()


def training_corpus() -> list[str]:
    rng = random.Random(7)
    words = ARABIC + CJK + LATIN
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 30))) for _ in range(400)]


def family_texts(n: int = 220, seed: int = 0) -> list[str]:
    """The shared exactness mix plus Arabic, CJK and mixed-script texts, short and over a 64-token limit."""
    rng = random.Random(seed + 100)
    extra = ["مرحبا", "中文", "🙂", " ".join(ARABIC), " ".join(CJK), " ".join(ARABIC * 12), " ".join(CJK * 15)]
    words = ARABIC + CJK + LATIN
    while len(extra) < 40:
        extra.append(" ".join(rng.choice(words) for _ in range(rng.choice([1, 4, 12, 40, 120]))))
    return mixed_texts(max(n - len(extra), 10), seed=seed) + extra


def make_tiny_xlmr(folder: Path, *, name: str = "multilingual-e5-small", seed: int = 0, max_len: int = 64,
                   layers: int = 2, hidden: int = 32) -> Path:
    """A random XLMRobertaModel with a Unigram tokenizer, saved in plain Hugging Face layout."""
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from e5kit.bench.checkpoints import unigram_xlmr_tokenizer

    folder = Path(folder) / name
    folder.mkdir(parents=True, exist_ok=True)
    hf = unigram_xlmr_tokenizer(training_corpus(), 400, max_len)
    hf.save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = XLMRobertaConfig(vocab_size=len(hf), hidden_size=hidden, num_hidden_layers=layers,
                           num_attention_heads=4, intermediate_size=hidden * 2, max_position_embeddings=max_len + 2,
                           pad_token_id=1, bos_token_id=0, eos_token_id=2, type_vocab_size=1)
    XLMRobertaModel(cfg).eval().save_pretrained(folder, safe_serialization=True)
    return folder


def make_tiny_mistral(folder: Path, *, name: str = "e5-mistral-tiny", seed: int = 0, max_len: int = 64,
                      padding_side: str = "right") -> Path:
    """A random MistralModel with a byte-level BPE tokenizer adding BOS (not EOS), pad token = EOS."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import MistralConfig, MistralModel, PreTrainedTokenizerFast

    folder = Path(folder) / name
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(training_corpus(), trainers.BpeTrainer(
        vocab_size=500, special_tokens=["<unk>", "<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                 pad_token="</s>", padding_side=padding_side, model_max_length=max_len)
    hf.save_pretrained(folder)
    torch.manual_seed(seed)
    cfg = MistralConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_len,
                        bos_token_id=1, eos_token_id=2, pad_token_id=2, sliding_window=None)
    MistralModel(cfg).eval().save_pretrained(folder, safe_serialization=True)
    return folder
