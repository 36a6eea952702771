"""Answerers made worse on purpose, to prove the gate fails when answers drift.

They wrap a real answerer and break one property each; ``dossier eval
--answerer extractive-shifted-citations`` should exit non-zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from dossier.answer.base import AnswerContext, Answerer
from dossier.answer.registry import ANSWERERS, build_answerer
from dossier.errors import ConfigurationError
from dossier.models import Answer, AnswerSentence, Citation, ScoredPassage
from dossier.settings import Settings
from dossier.text import sentence_spans


class ShiftedCitations(Answerer):
    """Every citation points at the next retrieved passage instead of its own."""

    def __init__(self, base: Answerer) -> None:
        self.base = base
        self.name = f"{base.name}-shifted-citations"

    def answer(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> Answer:
        result = self.base.answer(question, passages, context)
        ranked = [sp.passage for sp in passages]
        ids = [p.passage_id for p in ranked]
        shifted: list[Citation] = []
        for c in result.citations:
            rank = ids.index(c.passage_id) if c.passage_id in ids else -1
            p = ranked[(rank + 1) % len(ranked)] if ranked else None
            if p is None:
                shifted.append(c)
                continue
            shifted.append(
                replace(
                    c,
                    doc_id=p.doc_id,
                    passage_id=p.passage_id,
                    title=p.title,
                    passage_text=p.text,
                    start=p.start,
                    end=p.end,
                )
            )
        result.citations = shifted
        result.answerer = self.name
        return result


class NeverRefuses(Answerer):
    """Answers with the top passage's first sentence whenever the base answerer would refuse."""

    def __init__(self, base: Answerer) -> None:
        self.base = base
        self.name = f"{base.name}-no-refusal"

    def answer(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> Answer:
        result = self.base.answer(question, passages, context)
        if not result.refused or not passages:
            return result
        p = passages[0].passage
        s, e = (sentence_spans(p.text) or [(0, len(p.text))])[0]
        quote = p.text[s:e]
        citation = Citation(
            number=1,
            doc_id=p.doc_id,
            passage_id=p.passage_id,
            title=p.title,
            passage_text=p.text,
            quote=quote,
            start=p.start + s,
            end=p.start + e,
        )
        return Answer(
            question=question,
            collection=context.collection,
            text=f"{quote} [1]",
            sentences=[AnswerSentence(text=quote, citations=(1,))],
            citations=[citation],
            refused=False,
            answerer=self.name,
            passages=list(passages),
        )


DEGRADED: dict[str, Callable[[Answerer], Answerer]] = {
    "shifted-citations": ShiftedCitations,
    "no-refusal": NeverRefuses,
}


def eval_answerer(settings: Settings, name: str | None) -> Answerer:
    """A registered answerer, or ``<answerer>-<degradation>`` (e.g. extractive-no-refusal)."""
    name = name or settings.answerer
    if name in ANSWERERS:
        return build_answerer(settings, name)
    for suffix, wrap in DEGRADED.items():
        base = name.removesuffix(f"-{suffix}")
        if base != name and base in ANSWERERS:
            return wrap(build_answerer(settings, base))
    known = [*ANSWERERS, *(f"{a}-{d}" for a in ANSWERERS for d in DEGRADED)]
    raise ConfigurationError(f"Unknown answerer {name!r}; choose one of {', '.join(known)}.")
