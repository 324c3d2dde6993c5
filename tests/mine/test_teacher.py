"""Cross-encoder teacher scores: any sequence-classification checkpoint (1 or 2 labels), batching that does not
change a score, the scores stored with mined negatives in order, and clear refusals (tiny random classifiers)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from e5kit.data.mine import MineSettings, mine_negatives
from e5kit.data.shards import OutputSettings, iter_pairs
from e5kit.data.teacher import CrossEncoderTeacher, TeacherSettings
from e5kit.errors import ModelLoadError

FP32 = TeacherSettings(device="cpu", precision="fp32", max_length=64, batch_tokens=4096)


def _classifier(tiny_bert: Path, root: Path, labels: int) -> Path:
    """The tiny BERT's weights under a random classification head with `labels` outputs."""
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = root / f"cross-{labels}"
    torch.manual_seed(labels)
    model = BertForSequenceClassification.from_pretrained(tiny_bert, num_labels=labels).eval()
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def cross(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("teachers")
    return {n: _classifier(tiny_bert, root, n) for n in (1, 2, 3)}


QUERIES = ["what is a cell", "fire and water", "the protein of women", "small"]
PASSAGES = ["a cell is small", "water on fire is dark", "protein food for women and men", "big earth"]


def _by_hand(folder: Path) -> list[float]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    out = []
    with torch.no_grad():
        for q, p in zip(QUERIES, PASSAGES, strict=True):
            logits = model(**tok(q, p, return_tensors="pt")).logits[0]
            out.append(float(logits[0] if logits.numel() == 1 else logits[1] - logits[0]))
    return out


@pytest.mark.parametrize("labels", [1, 2])
def test_scores_are_the_relevance_logit_one_pair_at_a_time(cross, labels):
    """1 label: the logit; 2 labels: logit[1] - logit[0]; padding in a shared batch changes nothing."""
    got = CrossEncoderTeacher(str(cross[labels]), FP32).score(QUERIES, PASSAGES)
    assert got == pytest.approx(_by_hand(cross[labels]), abs=1e-5)
    one_per_batch = TeacherSettings(device="cpu", precision="fp32", max_length=64, batch_tokens=64)
    assert CrossEncoderTeacher(str(cross[labels]), one_per_batch).score(QUERIES, PASSAGES) == pytest.approx(got,
                                                                                                       abs=1e-5)
    assert len(set(got)) > 1  # not a constant


def test_empty_and_bad_input(cross):
    teacher = CrossEncoderTeacher(str(cross[1]), FP32)
    assert teacher.score([], []) == []
    with pytest.raises(ValueError, match="2 queries and 1 passages"):
        teacher.score(["a", "b"], ["c"])


def test_refusals(cross, tiny_bert, tmp_path):
    with pytest.raises(ModelLoadError, match="not a sequence-classification model"):
        CrossEncoderTeacher(str(tiny_bert), FP32)  # a plain encoder
    with pytest.raises(ModelLoadError, match="3 labels"):
        CrossEncoderTeacher(str(cross[3]), FP32)
    with pytest.raises(ModelLoadError, match="no model config"):
        CrossEncoderTeacher(str(tmp_path / "nowhere"), FP32)
    with pytest.raises(ValueError, match="for GPUs"):
        CrossEncoderTeacher(str(cross[1]), TeacherSettings(device="cpu", precision="fp16"))
    with pytest.raises(ValueError, match="max_length"):
        CrossEncoderTeacher(str(cross[1]), TeacherSettings(device="cpu", max_length=64, batch_tokens=32))


def test_teacher_budget_defaults_to_the_devices(cross):
    assert CrossEncoderTeacher(str(cross[1]), TeacherSettings(device="cpu", max_length=64)).batch_tokens == 4096
    assert CrossEncoderTeacher(str(cross[1]), FP32).batch_tokens == 4096 == FP32.batch_tokens
    given = TeacherSettings(device="cpu", max_length=64, batch_tokens=640)
    assert CrossEncoderTeacher(str(cross[1]), given).batch_tokens == 640
    for bad in (0, -64):  # 0 is not "use the default"
        with pytest.raises(ValueError, match="batch_tokens must be a positive int"):
            CrossEncoderTeacher(str(cross[1]), TeacherSettings(device="cpu", max_length=64, batch_tokens=bad))


def test_mined_pairs_carry_the_teacher_scores_of_positive_then_negatives(train_pairs, mine_index, cross, tmp_path):
    """teacher_scores[0] scores the positive, [1 + j] negative j, each equal to the teacher run on that pair alone."""
    index, model = mine_index
    mine_negatives(train_pairs, tmp_path / "out", index=index, model=model,
                   settings=MineSettings(negatives=3, teacher=str(cross[2])), teacher=FP32,
                   output=OutputSettings(show_progress=False))
    pairs = list(iter_pairs(tmp_path / "out"))
    teacher = CrossEncoderTeacher(str(cross[2]), FP32)
    assert len(pairs) == 11
    for p in pairs:
        assert p.negatives and len(p.teacher_scores) == 1 + len(p.negatives)
        expected = teacher.score([p.query] * (1 + len(p.negatives)), [p.passage, *p.negatives])
        assert p.teacher_scores == pytest.approx(expected, abs=1e-5)
