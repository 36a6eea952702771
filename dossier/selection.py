"""Answer candidates and the features a learned model scores them by.

A candidate is one sentence of a retrieved passage (overlapping chunks repeat
sentences; each is kept once, with its best-ranked passage). Its features describe
how it relates to the question (meaning, shared rare words, the kind of thing asked
for), where it sits (passage rank, position in the article) and how it compares with
the other candidates of the same question, since choosing is relative.

The same code computes the features at training time (``evals/train_answerer.py``)
and at answer time, so what the model was fit on is what it sees.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from dossier.models import ScoredPassage
from dossier.text import TermMatcher, sentence_spans, term_matches, term_set, terms

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|"
    r"sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)"
)
# What a question asks for ...
QUESTION_TYPES: dict[str, re.Pattern[str]] = {
    "when": re.compile(
        r"^\s*(?:when|what (?:date|day|year|month|time))\b|\b(?:in|by) what year\b"
        r"|\bhow long ago\b",
        re.I,
    ),
    "quantity": re.compile(
        r"^\s*how (?:many|much|long|old|far|big|large|high|fast)\b|"
        r"\bwhat (?:number|percentage|proportion|share|price|amount|score|margin|fee|sum)\b|"
        r"\bhow (?:many|much)\b",
        re.I,
    ),
    "who": re.compile(
        r"^\s*(?:who|whom|whose)\b|\bwhich (?:\w+ )?(?:country|countries|group|company|companies|"
        r"firm|firms|person|people|player|players|team|club|minister|party|band|singer|actor|"
        r"actress|director|manager|coach|organisation|organization)\b|\bname of\b",
        re.I,
    ),
    "why": re.compile(
        r"^\s*why\b|\bwhat (?:caused|led|prompted|was the reason)\b|\breason\b", re.I
    ),
    "how": re.compile(r"^\s*how\b(?! (?:many|much|long|old|far|big|large|high|fast))", re.I),
    "where": re.compile(r"^\s*where\b|\bin which (?:city|country|town|place)\b", re.I),
}
# ... and how a sentence shows it holds one.
_HOLDS: dict[str, re.Pattern[str]] = {
    "when": re.compile(
        rf"\b(?:{_MONTH}\b|(?:1[89]|20)\d\d\b|\d{{1,2}}(?:st|nd|rd|th)\b|"
        r"(?:mon|tues|wednes|thurs|fri|satur|sun)day\b|yesterday|last (?:week|year|month)|"
        r"next (?:week|year|month))",
        re.I,
    ),
    "quantity": re.compile(
        r"\d|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|"
        r"forty|fifty|hundred|thousand|million|billion|dozen|half|quarter|double|treble)s?\b",
        re.I,
    ),
    "who": re.compile(r"(?<![.!?“\"]\s)(?<!^)\b[A-Z][a-z]+|\b[A-Z]{2,}\b"),
    "why": re.compile(
        r"\b(?:because|due to|as a result|after|since|blam\w*|caus\w*|reason\w*|in order to|"
        r"so that|follow\w*|amid|owing to|thanks to|said|says|claim\w*|argu\w*|fear\w*|"
        r"concern\w*|aim\w*)\b",
        re.I,
    ),
    "how": re.compile(r"\b(?:by|through|using|with|via|means)\b", re.I),
    "where": re.compile(r"\b(?:in|at|near|from) [A-Z][a-z]+"),
}
_QUOTE = re.compile(r"[\"“”]|\bsaid\b|\bsays\b|\btold\b", re.I)
# A sentence opening with a pronoun leans on the one before it for its subject.
_LEANS = re.compile(r"^\s*(?:he|she|it|they|this|that|these|those|his|her|its|their)\b", re.I)


@lru_cache(maxsize=131_072)
def _holds(kind: str, text: str) -> bool:
    # Memoised: a candidate sentence recurs across related questions, and these regexes
    # (the name pattern's look-behinds above all) were a fifth of a warm answer's time.
    return bool(_HOLDS[kind].search(text))


def question_types(question: str) -> dict[str, bool]:
    return {name: bool(p.search(question)) for name, p in QUESTION_TYPES.items()}


@dataclass(frozen=True)
class Candidate:
    """One sentence of a retrieved passage, with document offsets for its citation."""

    passage: ScoredPassage
    rank: int  # the passage's rank among the retrieved passages
    start: int  # offsets into the document
    end: int
    text: str
    terms: frozenset[str]
    # The article's neighbouring sentences inside the same passage, when there are.
    previous: str = ""
    following: str = ""

    @property
    def doc_id(self) -> str:
        return self.passage.passage.doc_id


@lru_cache(maxsize=8192)
def _spans(text: str) -> tuple[tuple[int, int], ...]:
    # The sentence splitter costs about a millisecond per passage, and the same passages
    # come back for related questions.
    return tuple(sentence_spans(text))


def clear_caches() -> None:
    """Forget the memoised sentence spans and terms (for benchmarks of a cold start)."""
    _spans.cache_clear()
    _holds.cache_clear()
    term_set.cache_clear()


def candidates(passages: Sequence[ScoredPassage]) -> list[Candidate]:
    """Every distinct sentence of the passages, best-ranked passage first."""
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for rank, sp in enumerate(passages):
        p = sp.passage
        spans = _spans(p.text)
        for i, (s, e) in enumerate(spans):
            key = (p.doc_id, p.start + s)
            if key in seen:  # overlapping chunks repeat sentences
                continue
            seen.add(key)
            text = p.text[s:e]
            out.append(
                Candidate(
                    passage=sp,
                    rank=rank,
                    start=p.start + s,
                    end=p.start + e,
                    text=text,
                    terms=term_set(text),
                    previous=p.text[slice(*spans[i - 1])] if i > 0 else "",
                    following=p.text[slice(*spans[i + 1])] if i + 1 < len(spans) else "",
                )
            )
    return out


FEATURES: tuple[str, ...] = (
    "cos",
    "cos_rel",
    "cos_rank",
    "cov",
    "cov_rel",
    "cov_ctx",
    "cov_title",
    "idf_hits",
    "novelty",
    "type_match",
    "type_missing",
    "why_cue",
    "passage_rank",
    "passage_dense",
    "passage_dense_rel",
    "passage_lexical_rel",
    "passage_fused_rel",
    "doc_share",
    "position",
    "lead",
    "length",
    "short",
    "quote",
    "leans",
    "headline",
)


@dataclass(frozen=True)
class Scored:
    """Candidates with their feature matrix (rows in candidate order)."""

    candidates: list[Candidate]
    X: np.ndarray
    question_terms: list[str]
    sentence_cos: np.ndarray


def _rel(values: np.ndarray) -> np.ndarray:
    return values - (values.max() if len(values) else 0.0)


def featurize(
    question: str,
    question_vector: np.ndarray | None,
    cands: Sequence[Candidate],
    idf: Callable[[str], float],
    embed: Callable[[Sequence[str]], np.ndarray] | None,
) -> Scored:
    """The feature matrix of ``cands`` for ``question``, one row per candidate."""
    qterms = list(dict.fromkeys(terms(question)))
    n = len(cands)
    X = np.zeros((n, len(FEATURES)), dtype=np.float32)
    if n == 0:
        return Scored(list(cands), X, qterms, np.zeros(0, dtype=np.float32))
    if embed is not None and question_vector is not None:
        cos = embed([c.text for c in cands]) @ question_vector
    else:
        cos = np.zeros(n, dtype=np.float32)
    qtypes = question_types(question)
    asked = [t for t in ("when", "quantity", "who", "where") if qtypes[t]]
    match = TermMatcher(qterms, idf)
    total_idf = match.total or 1.0
    cov = np.array([match.coverage(c.terms) for c in cands], dtype=np.float32)
    dense = np.array([c.passage.dense_similarity or 0.0 for c in cands], dtype=np.float32)
    lexical = np.array([c.passage.lexical_score or 0.0 for c in cands], dtype=np.float32)
    fused = np.array([c.passage.score for c in cands], dtype=np.float32)
    docs = [c.doc_id for c in cands]
    passages_per_doc: dict[str, set[int]] = {}
    for c in cands:
        passages_per_doc.setdefault(c.doc_id, set()).add(c.rank)
    n_passages = max(c.rank for c in cands) + 1
    order = np.argsort(-cos, kind="stable")
    cos_rank = np.empty(n, dtype=np.float32)
    cos_rank[order] = np.arange(n, dtype=np.float32)
    for i, c in enumerate(cands):
        # The terms of "previous following" are those of each (words never span the space).
        ctx_terms = c.terms | term_set(c.previous) | term_set(c.following)
        title_terms = term_set(c.passage.passage.title)
        novel = match.unmatched(c.terms)
        words = len(c.text.split())
        holds = [_holds(t, c.text) for t in asked]
        X[i] = (
            cos[i],
            0.0,  # cos_rel, filled below
            1.0 / (1.0 + cos_rank[i]),
            cov[i],
            0.0,  # cov_rel
            match.coverage(ctx_terms),
            match.coverage(c.terms | title_terms),
            match.matched_weight(c.terms) / total_idf * math.log1p(total_idf),
            len(novel) / max(1, len(c.terms)),
            float(any(holds)) if asked else 0.0,
            float(not any(holds)) if asked else 0.0,
            float(qtypes["why"] and _holds("why", c.text)),
            1.0 / (1.0 + c.rank),
            dense[i],
            0.0,  # passage_dense_rel
            0.0,  # passage_lexical_rel
            0.0,  # passage_fused_rel
            len(passages_per_doc[docs[i]]) / n_passages,
            math.log1p(max(0, c.start) / 200.0),
            float(c.start < 400),
            math.log1p(words),
            float(words < 6),
            float(bool(_QUOTE.search(c.text))),
            float(bool(_LEANS.match(c.text))),
            float(c.text.strip() == c.passage.passage.title.strip()),
        )
    col = {name: j for j, name in enumerate(FEATURES)}
    X[:, col["cos_rel"]] = _rel(cos)
    X[:, col["cov_rel"]] = _rel(cov)
    X[:, col["passage_dense_rel"]] = _rel(dense)
    top_lex = lexical.max() if lexical.max() > 0 else 1.0
    X[:, col["passage_lexical_rel"]] = lexical / top_lex - 1.0
    spread = float(fused.max() - fused.min()) or 1.0
    X[:, col["passage_fused_rel"]] = (fused - fused.max()) / spread
    return Scored(list(cands), X, qterms, np.asarray(cos, dtype=np.float32))


ANSWERABILITY_FEATURES: tuple[str, ...] = (
    "best_logit",
    "margin",
    "best_cos",
    "max_cos",
    "best_cov",
    "max_cov",
    "best_cov_ctx",
    "top_dense",
    "missing_idf_share",
    "missing_max_idf",
    "n_terms",
    "type_missing_best",
    "asks_why_how",
)


def answerability_features(
    question: str, scored: Scored, logits: np.ndarray, idf: Callable[[str], float]
) -> np.ndarray:
    """Question-level evidence that the retrieved text holds an answer at all."""
    x = np.zeros(len(ANSWERABILITY_FEATURES), dtype=np.float32)
    if not scored.candidates:
        x[ANSWERABILITY_FEATURES.index("missing_idf_share")] = 1.0
        return x
    col = {name: j for j, name in enumerate(FEATURES)}
    best = int(np.argmax(logits))
    srt = np.sort(logits)[::-1]
    all_terms = frozenset().union(*(c.terms for c in scored.candidates))
    titles = frozenset(t for c in scored.candidates for t in terms(c.passage.passage.title))
    known = all_terms | titles
    weights = {t: idf(t) for t in scored.question_terms}
    total = sum(weights.values()) or 1.0
    missing = [w for t, w in weights.items() if not term_matches(t, known)]
    X = scored.X
    qtypes = question_types(question)
    x[:] = (
        srt[0],
        srt[0] - srt[1] if len(srt) > 1 else 0.0,
        X[best, col["cos"]],
        X[:, col["cos"]].max(),
        X[best, col["cov"]],
        X[:, col["cov"]].max(),
        X[best, col["cov_ctx"]],
        X[:, col["passage_dense"]].max(),
        sum(missing) / total,
        max(missing, default=0.0),
        math.log1p(len(scored.question_terms)),
        X[best, col["type_missing"]],
        float(qtypes["why"] or qtypes["how"]),
    )
    return x
