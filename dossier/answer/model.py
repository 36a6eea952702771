"""The learned answer model: a sentence scorer and an answerability probability.

Both are small enough to evaluate in numpy (no torch at run time) and are stored as
one JSON artefact that ``training/train_answerer.py`` writes, with its sha256 beside it:
a damaged or hand-edited artefact is refused at load instead of answering wrongly.

* The **sentence scorer** gives each candidate a logit; a softmax over the candidates
  of one question is the probability that it is the answer sentence (it was fit
  listwise, one gold sentence among the candidates of a question).
* The **answerability model** is a logistic regression over question-level evidence
  (the best logit, how much of the question the retrieved text covers, ...); its
  output is a calibrated probability that the corpus answers the question. The
  refusal threshold on it was chosen on a validation split for a stated false-refusal
  rate; see the artefact's ``meta``. P(answerable) is not calibrated across kinds of
  text (news vs. SQuAD's adversarial Wikipedia questions), so the artefact also holds a
  threshold per validation domain (``calibrations``); ``threshold`` is the news one,
  the kind of corpus Dossier is for, and a collection of another kind can be given its
  own (``DOSSIER_ANSWERABLE_THRESHOLDS``). ``chat`` is the one for a conversation's
  later turns, which refuses less: a refused follow-up loses the conversation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dossier.artifacts import DATA, Standardized, read_artifact, write_artifact

DEFAULT_PATH = DATA / "answer_model.json"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over one question's candidates (empty in, empty out)."""
    if len(logits) == 0:
        return logits
    e = np.exp(logits - logits.max())
    out: np.ndarray = e / e.sum()
    return out


def compose(probabilities: np.ndarray, ratio: float, max_sentences: int = 3) -> list[int]:
    """Indices of an answer's sentences, best first: the best candidate, then up to
    ``max_sentences - 1`` runners-up whose probability is at least ``ratio`` of the best's."""
    order = [int(i) for i in np.argsort(-probabilities, kind="stable")]
    if not order:
        return []
    best = probabilities[order[0]]
    return [order[0], *(i for i in order[1:max_sentences] if probabilities[i] >= ratio * best)]


@dataclass(frozen=True)
class AnswerModel:
    scorer: Standardized
    answerability: Standardized
    # Refuse when P(answerable) is below this (chosen on validation, see meta).
    threshold: float
    # Add a further sentence when its probability is at least this share of the best's.
    compose_ratio: float
    max_sentences: int = 3
    # The threshold chosen on each validation domain ("news", "squad2", ...).
    calibrations: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    def sentence_probabilities(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(logits, softmax over the candidates) for one question's feature matrix."""
        logits = self.scorer(X)
        return logits, softmax(logits)

    def compose(self, probabilities: np.ndarray) -> list[int]:
        return compose(probabilities, self.compose_ratio, self.max_sentences)

    def answerable_probability(self, x: np.ndarray) -> float:
        return self.answerability.probability(x)

    def to_json(self) -> dict[str, Any]:
        return {
            "scorer": self.scorer.to_json(),
            "answerability": self.answerability.to_json(),
            "threshold": self.threshold,
            "compose_ratio": self.compose_ratio,
            "max_sentences": self.max_sentences,
            "calibrations": self.calibrations,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AnswerModel:
        return cls(
            scorer=Standardized.from_json(data["scorer"]),
            answerability=Standardized.from_json(data["answerability"]),
            threshold=float(data["threshold"]),
            compose_ratio=float(data["compose_ratio"]),
            max_sentences=int(data.get("max_sentences", 3)),
            calibrations={str(k): float(v) for k, v in data.get("calibrations", {}).items()},
            meta=dict(data.get("meta", {})),
        )

    def save(self, path: Path) -> str:
        """Write the artefact and its ``.sha256`` sidecar; return the digest."""
        return write_artifact(path, self.to_json())


def load_answer_model(path: Path = DEFAULT_PATH) -> AnswerModel:
    return _load(str(path))


@lru_cache(maxsize=4)
def _load(path_str: str) -> AnswerModel:
    return AnswerModel.from_json(read_artifact(Path(path_str), "python -m training.train_answerer"))
