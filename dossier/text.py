"""Text primitives shared by retrieval, answering and the evals: sentences with spans, and terms.

One tokenizer serves BM25, the answerer's coverage score and the evals, so a
word counts the same everywhere.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence, Set
from functools import lru_cache
from typing import Any

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?", re.UNICODE)
_QUESTION_WORDS = frozenset(
    {
        "what",
        "which",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "when",
        "where",
        "did",
        "does",
        "do",
        "done",
        "many",
        "much",
        "according",
        "said",
        "say",
        "says",
        "tell",
        "told",
    }
)
_BLOCK = re.compile(r"\n\s*\n|\n(?=\s*[-*•]\s)")


@lru_cache(maxsize=1)
def _punkt() -> Any:
    # llama-index ships NLTK's punkt_tab and stopwords inside its wheel;
    # registering that folder keeps NLTK from ever trying to download them.
    from llama_index.core.utils import globals_helper
    from nltk.tokenize import PunktTokenizer

    globals_helper.wait_for_nltk_check()
    return PunktTokenizer("english")


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


@lru_cache(maxsize=1)
def stopwords() -> frozenset[str]:
    from bm25s.stopwords import STOPWORDS_EN

    # Question words carry no topic; without them "why" would have to occur
    # in a passage for it to look relevant.
    return frozenset(STOPWORDS_EN) | _QUESTION_WORDS


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence. Blank lines always end a sentence (headlines have no stop)."""
    spans: list[tuple[int, int]] = []
    cursor = 0
    blocks = [*(m.start() for m in _BLOCK.finditer(text)), len(text)]
    for block_end in blocks:
        block = text[cursor:block_end]
        for s, e in _punkt().span_tokenize(block):
            piece = block[s:e]
            stripped = piece.strip()
            if stripped and any(ch.isalnum() for ch in stripped):
                lead = len(piece) - len(piece.lstrip())
                spans.append((cursor + s + lead, cursor + s + lead + len(stripped)))
        cursor = block_end
    return spans


def words(text: str) -> list[str]:
    return [w.lower().replace("’", "'") for w in _WORD.findall(text)]


def terms(text: str) -> list[str]:
    """Lowercased, stop-worded, Snowball-stemmed terms."""
    stop = stopwords()
    kept = [w for w in words(text) if w not in stop]
    return list(_stemmer().stemWords(kept))


def normalized(text: str) -> str:
    """Text compared for duplicate detection: case and whitespace do not matter."""
    return " ".join(text.lower().split())


def digest(*parts: str, size: int = 16) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()[:size]


def indexed_text(title: str, text: str) -> str:
    """What is embedded and BM25-indexed for a passage: the headline gives a chunk its context."""
    if not title or text.startswith(title):
        return text
    return f"{title}\n{text}"


def term_matches(term: str, text_terms: Set[str]) -> bool:
    if term in text_terms:
        return True
    # Stemmers keep demonyms and derivations apart (iran/iranian, albania/albanian);
    # a shared stem of four or more letters is the same word for this purpose.
    if len(term) < 4:
        return False
    return any(len(t) >= 4 and (t.startswith(term) or term.startswith(t)) for t in text_terms)


def coverage(
    question_terms: Sequence[str], text_terms: Set[str], idf: Callable[[str], float]
) -> float:
    """Share of the question's content (idf-weighted) that the text contains."""
    weights = {t: idf(t) for t in question_terms}
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in weights.items() if term_matches(t, text_terms)) / total


@lru_cache(maxsize=65_536)
def term_set(text: str) -> frozenset[str]:
    """``frozenset(terms(text))``, memoised: candidate sentences, their neighbours and
    headlines recur across the passages of one question and across questions, and
    stemming them again was a large share of an answer's time."""
    return frozenset(terms(text))


class TermMatcher:
    """:func:`term_matches` and :func:`coverage` for one question's terms, over many texts.

    Gives exactly their answers (so features computed through it are bit-identical),
    but each distinct text term is compared with the question's terms once, not once per
    sentence it occurs in: a question checks thousands of (term, sentence) pairs.
    """

    def __init__(self, question_terms: Sequence[str], idf: Callable[[str], float]) -> None:
        self.weights = {t: idf(t) for t in question_terms}
        self.total = sum(self.weights.values())
        # For each question term, the text terms seen so far that it matches; it always
        # matches itself, and prefixes count only between terms of four letters or more.
        self._matches: dict[str, set[str]] = {q: {q} for q in self.weights}
        self._seen: set[str] = set()
        self._any: set[str] = set(self.weights)  # text terms that match some question term
        # A text term t and a question term q, both of four letters or more, match when one
        # begins the other: t is one of q's prefixes of 4+ letters (q itself included), or
        # t's first len(q) letters are q. Both are dictionary lookups, not a startswith per
        # (t, q) pair: this runs for every new term of ~150 sentences per question.
        self._prefix_of: dict[str, list[str]] = {}
        self._by_length: dict[int, set[str]] = {}
        for q in self.weights:
            if len(q) >= 4:
                self._by_length.setdefault(len(q), set()).add(q)
                for k in range(4, len(q) + 1):
                    self._prefix_of.setdefault(q[:k], []).append(q)

    def _learn(self, text_terms: Set[str]) -> None:
        if text_terms <= self._seen:  # the common case: a set operation, in C
            return
        new = [t for t in text_terms if t not in self._seen]
        self._seen.update(new)
        if not self._by_length:
            return
        for t in new:
            if len(t) < 4:
                continue
            for q in self._prefix_of.get(t, ()):
                self._matches[q].add(t)
                self._any.add(t)
            for length, qs in self._by_length.items():
                head = t[:length]  # t itself when shorter, which no q of that length equals
                if head in qs:
                    self._matches[head].add(t)
                    self._any.add(t)

    def matches(self, term: str, text_terms: Set[str]) -> bool:
        """``term_matches(term, text_terms)`` for a question term."""
        found = self._matches.get(term)
        if found is None:
            return term_matches(term, text_terms)
        self._learn(text_terms)
        return not found.isdisjoint(text_terms)

    def matched_weight(self, text_terms: Set[str]) -> float:
        """The idf weight of the question terms the text contains (coverage's numerator)."""
        self._learn(text_terms)
        # The same sum, in the same order, as coverage(): the float result is identical.
        return sum(
            w for t, w in self.weights.items() if not self._matches[t].isdisjoint(text_terms)
        )

    def coverage(self, text_terms: Set[str]) -> float:
        """``coverage(question_terms, text_terms, idf)``."""
        if self.total <= 0:
            return 0.0
        return self.matched_weight(text_terms) / self.total

    def unmatched(self, text_terms: Set[str]) -> list[str]:
        """The text terms no question term matches (``not term_matches(t, question)``)."""
        self._learn(text_terms)
        return [t for t in text_terms if t not in self._any]
