"""Answerers turn ranked passages into a cited answer, or an honest refusal.

The default, :class:`ExtractiveAnswerer`, needs no language model: it answers
with the passages' own sentences, so every sentence is supported by the passage
it cites by construction. Which sentences, and whether to answer at all, is
decided by the learned answer model (:mod:`dossier.answer.model`): a sentence
scorer and a calibrated probability that the retrieved text answers the question.

Two more answerers are kept for comparison, never as defaults:
:class:`RulesAnswerer` (the hand-set coverage rules that came before the model)
and :class:`CosineAnswerer` (the trivial baseline: the sentence most similar to
the question, never a refusal).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from dossier.answer.base import AnswerContext, Answerer, cited_answer, refusal
from dossier.answer.cross_encoder import pair_context
from dossier.answer.model import AnswerModel, compose, load_answer_model, softmax
from dossier.answer.neural import (
    NeuralModel,
    answerability_row,
    combined,
    joined,
    leans,
    load_neural_model,
    top_candidates,
)
from dossier.answer.selection import Candidate, answerability_features, candidates, featurize
from dossier.errors import ConfigurationError
from dossier.models import Answer, ScoredPassage
from dossier.text import coverage, normalized, sentence_spans, terms


def unseen(cands: list[Candidate], context: AnswerContext) -> list[Candidate]:
    if not context.seen:
        return cands
    fresh = [c for c in cands if normalized(c.text) not in context.seen]
    return fresh or cands


@dataclass(frozen=True)
class _Candidate:
    passage: ScoredPassage
    rank: int
    start: int  # offsets into the document
    end: int
    text: str
    coverage: float
    score: float
    terms: frozenset[str]


_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
# What kind of thing a question asks for, and how a sentence shows it holds one.
_ANSWER_TYPES: list[tuple[re.Pattern[str], re.Pattern[str]]] = [
    (
        re.compile(r"^\s*(?:when|what (?:date|day|year|month|time))\b|\bin what year\b", re.I),
        re.compile(
            rf"\b(?:{_MONTH}\b|(?:1[89]|20)\d\d\b|\d{{1,2}}(?:st|nd|rd|th)\b|"
            r"(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|yesterday|last (?:week|year))",
            re.I,
        ),
    ),
    (
        re.compile(
            r"^\s*how (?:many|much|long|old|far|big|large)\b|\bwhat (?:number|percentage)\b", re.I
        ),
        re.compile(
            r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|hundred|thousand|"
            r"million|billion|dozen|week|month|year|hour|day)s?\b",
            re.I,
        ),
    ),
    (
        re.compile(
            r"^\s*(?:who|whom|whose|which (?:country|countries|group|company|firm|person))\b", re.I
        ),
        re.compile(r"(?<![.!?“\"]\s)(?<!^)\b[A-Z][a-z]+|\b[A-Z]{2,}\b"),
    ),
]


def answer_type_match(question: str, sentence: str) -> bool | None:
    """Whether the sentence holds the kind of thing the question asks for; None if untyped."""
    for asks, holds in _ANSWER_TYPES:
        if asks.search(question):
            return bool(holds.search(sentence))
    return None


class ExtractiveAnswerer(Answerer):
    """Sentences chosen by the learned scorer, or a refusal below the answerability threshold."""

    name = "extractive"

    def __init__(
        self,
        model: AnswerModel | None = None,
        *,
        model_path: Path | None = None,
        max_sentences: int | None = None,
        threshold: float | None = None,
        neural: NeuralModel | bool = False,
        neural_path: Path | None = None,
        neural_threads: int = 0,
    ) -> None:
        self._model = model
        self._model_path = model_path
        self._max_sentences = max_sentences
        self._threshold = threshold
        # False: the linear model alone (kept for comparison); True: the shipped neural
        # model (loaded on first use); or a NeuralModel.
        self._neural: NeuralModel | None = neural if isinstance(neural, NeuralModel) else None
        self._use_neural = bool(neural)
        self._neural_path = neural_path
        self._neural_threads = neural_threads

    @property
    def neural(self) -> NeuralModel | None:
        """The neural answer model in use, or None (the linear model decides alone)."""
        if self._use_neural and self._neural is None:
            self._neural = (
                load_neural_model(self._neural_path) if self._neural_path else load_neural_model()
            )
        return self._neural

    def _calibrations(self) -> tuple[float, dict[str, float]]:
        """The deciding model's own threshold and calibrations."""
        neural = self.neural
        if neural is not None:
            return neural.threshold, neural.calibrations
        return self.model.threshold, self.model.calibrations

    @property
    def threshold(self) -> float:
        """Refuse below this P(answerable): the setting, else the model's own."""
        return self._calibrations()[0] if self._threshold is None else self._threshold

    def threshold_for(self, context: AnswerContext) -> float:
        """The collection's own threshold when it has one, else :attr:`threshold` (the
        model's "chat" calibration for a conversation's later turns, unless a threshold
        was set for all collections)."""
        own = context.answerable_threshold
        calibrations = self._calibrations()[1]
        if own is None:
            chat = calibrations.get("chat")
            if context.in_conversation and self._threshold is None and chat is not None:
                return chat
            return self.threshold
        if isinstance(own, str):
            try:
                return calibrations[own]
            except KeyError:
                raise ConfigurationError(
                    f"Unknown answerability calibration {own!r} for collection "
                    f"{context.collection!r}; the answer model has "
                    f"{', '.join(sorted(calibrations)) or 'none'}."
                ) from None
        return own

    @property
    def model(self) -> AnswerModel:
        if self._model is None:  # loaded on first use: construction stays cheap
            self._model = (
                load_answer_model(self._model_path) if self._model_path else load_answer_model()
            )
        return self._model

    def assess(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> tuple[float, list[Candidate], np.ndarray]:
        """P(answerable), the candidates, and each candidate's probability of being the answer."""
        cands = unseen(candidates(passages, context.sentences), context)
        if not cands:
            return 0.0, [], np.zeros(0)
        scored = featurize(question, context.question_vector, cands, context.idf, context.embed)
        logits, probabilities = self.model.sentence_probabilities(scored.X)
        x = answerability_features(question, scored, logits, context.idf)
        p = self.model.answerable_probability(x)
        neural = self.neural
        if neural is None:
            return p, cands, probabilities
        # The cross-encoder reads only the linear model's best few: it costs a forward
        # pass per sentence, and those few hold the gold sentence most of the time.
        top = top_candidates(logits, neural.top_n)
        ce = neural.encoder(self._neural_threads).logits(
            question, [pair_context(cands[i].passage.passage.title, cands[i].text) for i in top]
        )
        scores = combined(ce, logits[top], neural.linear_weight)
        chosen = np.zeros(len(cands))
        chosen[top] = softmax(scores)
        return (
            neural.answerable_probability(answerability_row(p, ce, neural.null_logit)),
            cands,
            chosen,
        )

    def answerability(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> tuple[float, float]:
        """(P(answerable), the refusal threshold): what a generating answerer gates on."""
        return self.assess(question, passages, context)[0], self.threshold_for(context)

    def answer(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> Answer:
        if not passages:
            return refusal(question, context.collection, self.name, "no passage matched", passages)
        p, cands, probabilities = self.assess(question, passages, context)
        threshold = self.threshold_for(context)
        if not cands or p < threshold:
            return refusal(
                question,
                context.collection,
                self.name,
                f"the passages are unlikely to answer it: P(answerable) {p:.2f} < {threshold:.2f}",
                passages,
                answerable_probability=round(p, 4),
            )
        neural = self.neural
        if neural is None:
            order = self.model.compose(probabilities)
        else:
            order = compose(probabilities, neural.compose_ratio, neural.max_sentences)
        if self._max_sentences is not None:
            order = order[: self._max_sentences]
        chosen = [cands[i] for i in order]
        if neural is not None:
            chosen = [with_antecedent(c) for c in chosen]
        return cited_answer(question, context.collection, self.name, passages, chosen, round(p, 4))


def with_antecedent(c: Candidate) -> Candidate:
    """A sentence that opens with a pronoun, rewritten as one sentence with the sentence
    before it (one citation quotes both); any other sentence as it is."""
    if not c.previous or not leans(c.text):
        return c
    p = c.passage.passage
    at = p.text.rfind(c.previous, 0, c.start - p.start)
    if at < 0:
        return c
    return replace(c, start=p.start + at, text=joined(c.previous, c.text), previous="")


class CosineAnswerer(Answerer):
    """The trivial baseline: the retrieved sentence closest in meaning to the question."""

    name = "cosine"

    def __init__(self, sentences: int = 1) -> None:
        self.sentences = sentences

    def answer(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> Answer:
        cands = candidates(passages, context.sentences)
        if not cands or context.embed is None or context.question_vector is None:
            return refusal(question, context.collection, self.name, "no passage matched", passages)
        cos = context.embed([c.text for c in cands]) @ context.question_vector
        order = np.argsort(-cos, kind="stable")[: self.sentences]
        return cited_answer(
            question, context.collection, self.name, passages, [cands[int(i)] for i in order]
        )


class RulesAnswerer(Answerer):
    """The hand-set coverage rules that preceded the learned model (kept for comparison)."""

    name = "rules"

    def __init__(
        self,
        *,
        max_sentences: int = 3,
        min_coverage: float = 0.45,
        min_similarity: float = 0.25,
        min_sentence_similarity: float = 0.6,
        semantic_pool: int = 5,
        keep_ratio: float = 0.5,
    ) -> None:
        self.max_sentences = max_sentences
        self.min_coverage = min_coverage
        self.min_similarity = min_similarity
        self.min_sentence_similarity = min_sentence_similarity
        self.semantic_pool = semantic_pool
        self.keep_ratio = keep_ratio

    def _candidates(
        self,
        qterms: list[str],
        passages: Sequence[ScoredPassage],
        idf: Callable[[str], float],
        question: str = "",
    ) -> list[_Candidate]:
        seen: set[tuple[str, int]] = set()
        out: list[_Candidate] = []
        for rank, sp in enumerate(passages):
            p = sp.passage
            for s, e in sentence_spans(p.text):
                key = (p.doc_id, p.start + s)
                if key in seen:  # overlapping chunks repeat sentences
                    continue
                seen.add(key)
                text = p.text[s:e]
                sentence_terms = frozenset(terms(text))
                cov = coverage(qterms, sentence_terms, idf)
                # Coverage decides; the passage's rank breaks ties between sentences
                # that say the same amount (fused scores have no fixed scale, ranks
                # do), and short fragments are discounted.
                length_factor = min(1.0, len(text.split()) / 8)
                # News is written lead-first: the opening sentences state the why and what.
                lead = 0.05 if p.start + s < 600 else 0.0
                # A "when" question wants a sentence with a date in it, and so on.
                typed = 0.2 if answer_type_match(question, text) else 0.0
                score = cov * length_factor + 0.15 * (1 - rank / len(passages)) + lead + typed
                out.append(
                    _Candidate(sp, rank, p.start + s, p.start + e, text, cov, score, sentence_terms)
                )
        out.sort(key=lambda c: c.score, reverse=True)
        return out

    def answer(
        self, question: str, passages: Sequence[ScoredPassage], context: AnswerContext
    ) -> Answer:
        qterms = list(dict.fromkeys(terms(question)))
        if not passages:
            return refusal(question, context.collection, self.name, "no passage matched", passages)
        if not qterms:
            return refusal(
                question,
                context.collection,
                self.name,
                "the question has no content words",
                passages,
            )
        candidates = self._candidates(qterms, passages, context.idf, question)
        pair = self._best_pair(qterms, candidates, context.idf)
        best_similarity = max((sp.dense_similarity or 0.0 for sp in passages), default=0.0)
        best_coverage = max([c.coverage for c in candidates] + [pair[0] if pair else 0.0])
        # Embeddings of names and numbers are weak, so a sentence that holds
        # nearly every content word of the question overrides a low similarity.
        if best_similarity < self.min_similarity and best_coverage < 0.9:
            return refusal(
                question,
                context.collection,
                self.name,
                f"closest passage similarity {best_similarity:.2f} < {self.min_similarity:.2f}",
                passages,
            )
        single = candidates[0].coverage if candidates else 0.0
        if single < self.min_coverage:
            if pair and pair[0] >= self.min_coverage + 0.1:
                # Two adjacent sentences together answer what neither does alone
                # ("… planned a conference." "… canceled the event citing …").
                return self._compose(question, context, passages, list(pair[1]))
            # Words the corpus never uses ("react", "leave") make coverage low even
            # when a sentence answers in other words; meaning decides those cases.
            # Only this uncertain path pays for embedding a few sentences.
            semantic = self._most_similar(question, candidates, context)
            if semantic is not None and semantic[1] >= self.min_sentence_similarity:
                return self._compose(question, context, passages, [semantic[0]])
            best_pair = f", adjacent pair {pair[0]:.2f}" if pair else ""
            best_sim = (
                f"; closest sentence similarity {semantic[1]:.2f} "
                f"(< {self.min_sentence_similarity:.2f})"
                if semantic
                else ""
            )
            return refusal(
                question,
                context.collection,
                self.name,
                f"best sentence covers {single:.2f} of the question{best_pair} "
                f"(< {self.min_coverage:.2f}){best_sim}",
                passages,
            )
        chosen = [candidates[0]]
        for c in candidates[1:]:
            if len(chosen) >= self.max_sentences:
                break
            if c.score >= self.keep_ratio * chosen[0].score and c.coverage >= self.min_coverage:
                chosen.append(c)
        return self._compose(question, context, passages, chosen)

    def _most_similar(
        self, question: str, candidates: list[_Candidate], context: AnswerContext
    ) -> tuple[_Candidate, float] | None:
        if context.embed is None or context.question_vector is None or not candidates:
            return None
        pool = candidates[: self.semantic_pool]
        sims = context.embed([c.text for c in pool]) @ context.question_vector
        # Among sentences that are close enough, prefer one of the asked-for kind.
        typed = [0.05 if answer_type_match(question, c.text) else 0.0 for c in pool]
        best = max(range(len(pool)), key=lambda i: sims[i] + typed[i])
        return pool[best], float(sims[best])

    def _best_pair(
        self, qterms: list[str], candidates: list[_Candidate], idf: Callable[[str], float]
    ) -> tuple[float, tuple[_Candidate, _Candidate]] | None:
        by_position = sorted(candidates, key=lambda c: (c.passage.passage.doc_id, c.start))
        best: tuple[float, tuple[_Candidate, _Candidate]] | None = None
        for a, b in itertools.pairwise(by_position):
            if a.passage.passage.doc_id != b.passage.passage.doc_id or b.start - a.end > 3:
                continue
            cov = coverage(qterms, set(a.terms | b.terms), idf)
            if best is None or cov > best[0]:
                best = (cov, (a, b))
        return best

    def _compose(
        self,
        question: str,
        context: AnswerContext,
        passages: Sequence[ScoredPassage],
        chosen: list[_Candidate],
    ) -> Answer:
        # Articles in rank order, and within an article in reading order.
        doc_rank: dict[str, int] = {}
        for c in chosen:
            doc_rank.setdefault(c.passage.passage.doc_id, c.rank)
        chosen.sort(key=lambda c: (doc_rank[c.passage.passage.doc_id], c.start))
        return cited_answer(
            question,
            context.collection,
            self.name,
            passages,
            [Candidate(c.passage, c.rank, c.start, c.end, c.text, c.terms) for c in chosen],
        )
