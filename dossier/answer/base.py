"""What every answerer is: the interface, what it may use, and the two answers it gives.

An answerer turns ranked passages into a cited answer (:func:`cited_answer`) or an honest
refusal (:func:`refusal`). Implementations live beside this module
(:mod:`dossier.answer.extractive`, :mod:`dossier.answer.llm`); the registry that picks one
by ``DOSSIER_ANSWERER`` is :mod:`dossier.answer.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass

import numpy as np

from dossier.answer.selection import Candidate
from dossier.index.sentence_table import PassageSentences
from dossier.models import Answer, AnswerSentence, Citation, Passage, ScoredPassage

REFUSAL_TEXT = "The corpus does not say. None of the retrieved passages answers this question."


@dataclass(frozen=True)
class AnswerContext:
    """What an answerer may use beyond the passages: corpus statistics, and the embedder."""

    collection: str
    idf: Callable[[str], float]
    # Unit vectors for texts, and the question's own, when an embedder is at hand.
    embed: Callable[[Sequence[str]], np.ndarray] | None = None
    question_vector: np.ndarray | None = None
    # In a conversation: sentences the user was already shown in earlier answers
    # (normalized). A follow-up asks for something new, so they are not offered again
    # while any other sentence is left.
    seen: frozenset[str] = frozenset()
    # This collection's refusal threshold on P(answerable), when it has its own: a number,
    # or the name of one of the answer model's calibrations ("news", "squad2").
    answerable_threshold: float | str | None = None
    # A conversation's later turn (the question was condensed from the history): without a
    # threshold of the collection's own, the model's "chat" calibration applies.
    in_conversation: bool = False
    # A passage's sentence spans and terms, from the collection's index (saved at ingest);
    # None: the answerer computes them.
    sentences: Callable[[Passage], PassageSentences] | None = None


@dataclass(frozen=True)
class TextDelta:
    """A piece of an answer's text as it is written (markers to unknown passages removed)."""

    text: str


StreamEvent = TextDelta | Answer


class Answerer(ABC):
    name: str

    @abstractmethod
    def answer(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> Answer: ...

    def stream(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> Generator[StreamEvent, None, None]:
        """Text deltas while the answer is written, then the final Answer.

        Answerers that compose the whole answer at once (the extractive ones) yield just
        the Answer; a generating answerer overrides this to yield text as it arrives.
        """
        yield self.answer(question, passages, context)


def refusal(
    question: str,
    collection: str,
    name: str,
    reason: str,
    passages: Sequence[ScoredPassage],
    answerable_probability: float | None = None,
) -> Answer:
    return Answer(
        question=question,
        collection=collection,
        text=REFUSAL_TEXT,
        sentences=[],
        citations=[],
        refused=True,
        answerer=name,
        passages=list(passages),
        refusal_reason=reason,
        answerable_probability=answerable_probability,
    )


def cited_answer(
    question: str,
    collection: str,
    name: str,
    passages: Sequence[ScoredPassage],
    chosen: Sequence[Candidate],
    answerable_probability: float | None = None,
) -> Answer:
    """An answer made of the chosen sentences in the given order, each citing its span."""
    citations: list[Citation] = []
    sentences: list[AnswerSentence] = []
    for c in chosen:
        number = len(citations) + 1
        citations.append(Citation.of(number, c.passage.passage, c.start, c.end))
        sentences.append(AnswerSentence(text=c.text, citations=(number,), supported=True))
    return Answer(
        question=question,
        collection=collection,
        text=" ".join(f"{s.text} [{s.citations[0]}]" for s in sentences),
        sentences=sentences,
        citations=citations,
        refused=False,
        answerer=name,
        passages=list(passages),
        answerable_probability=answerable_probability,
    )
