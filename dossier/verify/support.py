"""The support-scorer interface: does a passage support a sentence?"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from dossier.text import sentence_spans


@dataclass(frozen=True)
class SupportVerdict:
    supported: bool
    score: float
    reasons: tuple[str, ...] = ()


class SupportScorer(ABC):
    name: str

    @abstractmethod
    def score(self, sentence: str, passage: str) -> SupportVerdict:
        """Whether ``passage`` alone supports everything ``sentence`` states."""

    def claims(self, text: str) -> list[str]:
        """Atomic claims of an answer text; by default its sentences and semicolon clauses."""
        out: list[str] = []
        for s, e in sentence_spans(text):
            out.extend(part.strip() for part in text[s:e].split(";") if part.strip())
        return out
