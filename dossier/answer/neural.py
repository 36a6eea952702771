"""How the neural answer model is used: rerank, answerability, composition.

The artefact (``dossier/data/answer_neural.json``, sha256-checked like the others) is
written by ``python -m training.train_cross_encoder fit``. It names the ONNX cross-encoder
(:mod:`dossier.answer.cross_encoder`) with its sha256 and holds what was chosen on
validation:

* ``top_n``: how many of the linear model's best candidates the cross-encoder reads (the
  linear model is cheap and its top few hold the gold sentence most of the time; the
  cross-encoder costs a forward pass per candidate);
* ``linear_weight``: a candidate's score is its cross-encoder logit plus this times its
  linear logit;
* ``answerability``: a logistic model over :data:`ANSWERABILITY_FEATURES` (today's linear
  P(answerable) and the cross-encoder's P(no answer)), and the refusal ``threshold`` on
  it (with ``calibrations`` per kind of collection, like the linear model's);
* ``compose_ratio``: a second sentence is added only when its probability is at least
  this share of the first's.

The same functions compute these at fitting time and at answer time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from dossier.answer.cross_encoder import CrossEncoder
from dossier.answer.model import softmax
from dossier.answer.selection import LEANS
from dossier.artifacts import DATA, Standardized, read_artifact, write_artifact

DEFAULT_PATH = DATA / "answer_neural.json"
REBUILD = "python -m training.train_cross_encoder fit"

ANSWERABILITY_FEATURES: tuple[str, ...] = (
    "linear_logit",  # logit of the linear model's P(answerable)
    "null_log_probability",  # log P(no answer) from the softmax over [NULL, top-n]
    "best_minus_null",  # the best cross-encoder logit minus the NULL logit
)


def top_candidates(linear_logits: np.ndarray, n: int) -> np.ndarray:
    """Indices of the ``n`` best candidates by the linear model, best first."""
    return np.argsort(-linear_logits, kind="stable")[:n]


def combined(ce_logits: np.ndarray, linear_logits: np.ndarray, weight: float) -> np.ndarray:
    return ce_logits + weight * linear_logits


def with_null(scores: np.ndarray, null_logit: float) -> np.ndarray:
    """Softmax over [NULL, scores...]: entry 0 is P(no answer)."""
    return softmax(np.concatenate([[null_logit], scores]).astype(np.float64))


def answerability_row(linear_p: float, ce_logits: np.ndarray, null_logit: float) -> np.ndarray:
    p = min(max(linear_p, 1e-6), 1 - 1e-6)
    probs = with_null(ce_logits, null_logit)
    best = float(ce_logits.max()) if len(ce_logits) else null_logit - 10.0
    return np.array(
        [math.log(p / (1 - p)), math.log(max(probs[0], 1e-12)), best - null_logit],
        dtype=np.float64,
    )


def leans(text: str) -> bool:
    """Opens with a pronoun: leans on the sentence before it for what it is about."""
    return bool(LEANS.match(text))


def joined(previous: str, sentence: str) -> str:
    """A leaning sentence rewritten with its antecedent sentence before it, as one
    sentence (both are quoted by one citation, so nothing unquoted is added)."""
    prev = previous.rstrip()
    if prev.endswith("."):
        first = sentence.lstrip()
        return f"{prev[:-1]}; {first[:1].lower()}{first[1:]}"
    return f"{prev} {sentence.lstrip()}"


@dataclass(frozen=True)
class NeuralModel:
    onnx: str  # file name beside the artefact
    onnx_sha256: str
    null_logit: float
    top_n: int
    linear_weight: float
    answerability: Standardized
    threshold: float
    compose_ratio: float
    max_sentences: int = 2
    calibrations: dict[str, float] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    # Where the artefact was read from: the ONNX file sits beside it.
    directory: Path = DATA

    def encoder(self, threads: int = 0) -> CrossEncoder:
        return _encoder(str(self.directory / self.onnx), self.onnx_sha256, threads)

    def answerable_probability(self, row: np.ndarray) -> float:
        return self.answerability.probability(row)

    def to_json(self) -> dict[str, Any]:
        return {
            "onnx": self.onnx,
            "onnx_sha256": self.onnx_sha256,
            "null_logit": self.null_logit,
            "top_n": self.top_n,
            "linear_weight": self.linear_weight,
            "answerability": self.answerability.to_json(),
            "threshold": self.threshold,
            "compose_ratio": self.compose_ratio,
            "max_sentences": self.max_sentences,
            "calibrations": self.calibrations,
            "meta": self.meta,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], directory: Path = DATA) -> NeuralModel:
        return cls(
            onnx=str(data["onnx"]),
            onnx_sha256=str(data["onnx_sha256"]),
            null_logit=float(data["null_logit"]),
            top_n=int(data["top_n"]),
            linear_weight=float(data["linear_weight"]),
            answerability=Standardized.from_json(data["answerability"]),
            threshold=float(data["threshold"]),
            compose_ratio=float(data["compose_ratio"]),
            max_sentences=int(data.get("max_sentences", 2)),
            calibrations={str(k): float(v) for k, v in data.get("calibrations", {}).items()},
            meta=dict(data.get("meta", {})),
            directory=directory,
        )

    def save(self, path: Path) -> str:
        return write_artifact(path, self.to_json())


@lru_cache(maxsize=4)
def _encoder(path: str, sha256: str, threads: int) -> CrossEncoder:
    # One session per file and process: it holds the weights (~23 MB) and its thread pool.
    return CrossEncoder(Path(path), sha256, threads=threads)


def load_neural_model(path: Path = DEFAULT_PATH) -> NeuralModel:
    return _load(str(path))


@lru_cache(maxsize=4)
def _load(path_str: str) -> NeuralModel:
    path = Path(path_str)
    return NeuralModel.from_json(read_artifact(path, REBUILD), directory=path.parent)
