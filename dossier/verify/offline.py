"""The offline support scorer: no network, no LLM, so CI and air-gapped machines can run it.

A logistic model over the features of :mod:`dossier.support.features` (the bundled
embedder's similarity, lexical coverage, and the hard checks on numbers, units,
names and negation that embeddings cannot see), fit by ``training/train_support.py``
on rule-generated pairs, split by article. A sentence quoted verbatim from the
passage is supported without the model.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from dossier.artifacts import DATA, Standardized, read_artifact, write_artifact
from dossier.index.embeddings import embed_array
from dossier.verify.features import is_verbatim, pair_evidence, sentence_windows
from dossier.verify.support import SupportScorer, SupportVerdict

DEFAULT_PATH = DATA / "support_model.json"


@dataclass(frozen=True)
class SupportModel:
    """P(supported) from pair features, and the threshold chosen on validation."""

    model: Standardized
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)

    def probability(self, x: np.ndarray) -> float:
        z = float(self.model(x[None, :])[0])
        return float(1.0 / (1.0 + np.exp(-z)))

    def save(self, path: Path) -> str:
        return write_artifact(
            path, {"model": self.model.to_json(), "threshold": self.threshold, "meta": self.meta}
        )


def load_support_model(path: Path = DEFAULT_PATH) -> SupportModel:
    return _load(str(path))


@lru_cache(maxsize=4)
def _load(path_str: str) -> SupportModel:
    data = read_artifact(Path(path_str), "python -m training.train_support")
    return SupportModel(
        Standardized.from_json(data["model"]), float(data["threshold"]), dict(data["meta"])
    )


class OfflineSupportScorer(SupportScorer):
    """A learned P(supported) over similarity, coverage and hard checks; verbatim quotes pass."""

    name = "offline"

    def __init__(
        self,
        embedder: BaseEmbedding,
        *,
        model: SupportModel | None = None,
        threshold: float | None = None,
        cache_size: int = 20_000,
    ) -> None:
        self.embedder = embedder
        self.model = model or load_support_model()
        # None: the threshold chosen on validation when the model was fit.
        self.threshold = self.model.threshold if threshold is None else threshold
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            known = {t: self._cache[t] for t in texts if t in self._cache}
        todo = [t for t in dict.fromkeys(texts) if t not in known]
        if todo:
            known.update(zip(todo, embed_array(self.embedder, todo), strict=True))
        with self._lock:
            for t in dict.fromkeys(texts):
                self._cache[t] = known[t]
                self._cache.move_to_end(t)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return np.stack([known[t] for t in texts])

    def evidence(self, sentence: str, passage: str) -> tuple[np.ndarray, list[str]]:
        """The pair's feature vector and the hard checks it fails, in words."""
        windows = sentence_windows(passage)
        vectors = self._embed([sentence, passage, *windows])
        sims = vectors[1:] @ vectors[0]
        return pair_evidence(sentence, passage, [float(x) for x in sims[1:]], float(sims[0]))

    def score(self, sentence: str, passage: str) -> SupportVerdict:
        if not sentence.strip():
            return SupportVerdict(True, 1.0, ("empty sentence",))
        if is_verbatim(sentence, passage):
            return SupportVerdict(True, 1.0, ("quoted verbatim from the passage",))
        x, checks = self.evidence(sentence, passage)
        p = self.model.probability(x)
        supported = p >= self.threshold
        summary = (
            f"P(supported) {p:.2f} {'>=' if supported else '<'} {self.threshold:.2f} "
            f"(similarity {x[0]:.2f}, term coverage {x[2]:.2f})"
        )
        return SupportVerdict(supported, round(p, 4), (summary, *checks))
