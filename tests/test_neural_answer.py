"""The neural answer model: the shipped ONNX file against torch, its checks, its composition."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from dossier.answer.base import AnswerContext
from dossier.answer.cross_encoder import CrossEncoder, pair_context
from dossier.answer.extractive import ExtractiveAnswerer, with_antecedent
from dossier.answer.neural import (
    ANSWERABILITY_FEATURES,
    DEFAULT_PATH,
    answerability_row,
    joined,
    leans,
    load_neural_model,
    with_null,
)
from dossier.answer.selection import candidates
from dossier.engine import Dossier
from dossier.errors import ModelNotInstalled
from dossier.models import Passage, ScoredPassage
from evals import metrics as m


def test_shipped_onnx_matches_the_torch_weights_it_was_exported_from() -> None:
    """The probes were scored by the trained torch model at fitting time; the int8 file the
    service runs must rank them the same and stay close in value."""
    model = load_neural_model()
    probes = model.meta["parity_probes"]
    assert len(probes) >= 3
    encoder = model.encoder()
    for probe in probes:
        got = encoder.logits(probe["question"], probe["contexts"])
        want = np.asarray(probe["torch"], dtype=np.float32)
        assert got.shape == want.shape
        # int8 drifts: over 40 validation questions at most 1.64 logits, 0.84 on average
        # (training/reports/train_cross_encoder.json), at the same gold-sentence accuracy.
        assert np.abs(got - want).max() < 1.7, (got, want)
        assert np.corrcoef(got, want)[0, 1] > 0.97
        assert int(np.argmax(want)) in np.argsort(-got)[:2]


def test_shipped_model_is_small_and_checked() -> None:
    model = load_neural_model()
    path = DEFAULT_PATH.parent / model.onnx
    assert path.stat().st_size <= 30 * 1024 * 1024
    assert 1 <= model.top_n <= 12
    assert set(model.answerability.names) == set(ANSWERABILITY_FEATURES)
    assert {"news", "chat", "squad2"} <= set(model.calibrations)


def test_a_damaged_onnx_file_is_refused(tmp_path: Path) -> None:
    model = load_neural_model()
    bad = tmp_path / model.onnx
    shutil.copyfile(DEFAULT_PATH.parent / model.onnx, bad)
    with bad.open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(ModelNotInstalled, match="sha256"):
        CrossEncoder(bad, model.onnx_sha256).logits("q?", ["a sentence."])
    with pytest.raises(ModelNotInstalled, match="missing"):
        CrossEncoder(tmp_path / "none.onnx", model.onnx_sha256).logits("q?", ["a"])


def test_a_hand_edited_artefact_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "answer_neural.json"
    shutil.copyfile(DEFAULT_PATH, target)
    shutil.copyfile(DEFAULT_PATH.with_suffix(".sha256"), target.with_suffix(".sha256"))
    data = json.loads(target.read_text())
    data["threshold"] = 0.0
    target.write_text(json.dumps(data))
    with pytest.raises(ModelNotInstalled, match="sha256"):
        load_neural_model(target)


def test_null_softmax_and_answerability_row() -> None:
    probs = with_null(np.array([2.0, 0.0]), 0.0)
    assert probs.shape == (3,) and abs(probs.sum() - 1) < 1e-9 and probs.argmax() == 1
    row = answerability_row(0.5, np.array([1.0, -1.0]), 0.0)
    assert row.shape == (len(ANSWERABILITY_FEATURES),)
    assert row[0] == pytest.approx(0.0) and row[2] == pytest.approx(1.0)
    # No candidate: P(no answer) is 1 and the best-minus-null margin very negative.
    empty = answerability_row(0.5, np.zeros(0), 0.0)
    assert empty[1] == pytest.approx(0.0) and empty[2] < -5


def test_a_leaning_sentence_carries_its_antecedent() -> None:
    assert leans("He said the attack failed.") and leans("This was denied.")
    assert not leans("Helen said so.") and not leans("Thessaly is a region.")
    assert joined("Rama spoke on Wednesday.", "He said Iran was behind it.") == (
        "Rama spoke on Wednesday; he said Iran was behind it."
    )
    text = "Edi Rama spoke on Wednesday. He said Iran hired four groups. Nothing else."
    passage = Passage("d#0", "d", text, 100, 100 + len(text), "Albania")
    sp = ScoredPassage(passage, 1.0)
    cands = candidates([sp])
    second = with_antecedent(cands[1])
    assert second.text == "Edi Rama spoke on Wednesday; he said Iran hired four groups."
    # One citation quotes both sentences of the document, exactly.
    assert (second.start, second.end) == (100, 100 + text.index(" Nothing"))
    assert with_antecedent(cands[0]) == cands[0]


def test_pair_context_names_the_headline() -> None:
    assert pair_context("Albania cuts ties", "It acted.") == "Albania cuts ties: It acted."
    assert pair_context("Same", "Same") == "Same"
    assert pair_context("", "Only.") == "Only."


def test_neural_answers_open_with_the_answer_and_stay_short(seed_engine: Dossier) -> None:
    neural = ExtractiveAnswerer(neural=True)
    r = seed_engine.retrieve("When did Albania agree to shelter members of the opposition group?")
    answer = neural.answer(r.question, r.passages, r.context)
    assert not answer.refused, answer.refusal_reason
    assert "2014" in m.first_sentence(answer.sentences[0].text)
    assert len(answer.sentences) <= 2
    doc = seed_engine.document(answer.citations[0].doc_id).text
    for c in answer.citations:
        assert doc[c.start : c.end] == c.quote


def test_no_candidates_means_refusal_for_the_neural_answerer() -> None:
    answer = ExtractiveAnswerer(neural=True).answer(
        "Why?", [], AnswerContext("x", idf=lambda t: 1.0)
    )
    assert answer.refused
