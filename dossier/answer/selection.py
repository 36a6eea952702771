"""Answer candidates and the features a learned model scores them by.

A candidate is one sentence of a retrieved passage (overlapping chunks repeat
sentences; each is kept once, with its best-ranked passage). Its features describe
how it relates to the question (meaning, shared rare words, the kind of thing asked
for), where it sits (passage rank, position in the article) and how it compares with
the other candidates of the same question, since choosing is relative.

The same code computes the features at training time (``training/train_answerer.py``)
and at answer time, so what the model was fit on is what it sees.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from dossier.index.sentence_table import PassageSentences
from dossier.models import Passage, ScoredPassage
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
LEANS = re.compile(r"^\s*(?:he|she|it|they|this|that|these|those|his|her|its|their)\b", re.I)


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
    # The terms of this sentence and both neighbours, when known beforehand (from the saved
    # sentence table); else featurize stems the neighbours. Derived: not compared.
    context_terms: frozenset[str] | None = field(default=None, compare=False)

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


def candidates(
    passages: Sequence[ScoredPassage],
    sentences: Callable[[Passage], PassageSentences] | None = None,
) -> list[Candidate]:
    """Every distinct sentence of the passages, best-ranked passage first.

    ``sentences`` gives a passage's sentence spans and terms (the index's, saved at ingest:
    ``LexicalIndex.passage_sentences``); without it they are computed here, the same ones.
    """
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    empty: frozenset[str] = frozenset()
    for rank, sp in enumerate(passages):
        p = sp.passage
        split = sentences(p) if sentences is not None else None
        spans = split.spans if split is not None else _spans(p.text)
        for i, (s, e) in enumerate(spans):
            key = (p.doc_id, p.start + s)
            if key in seen:  # overlapping chunks repeat sentences
                continue
            seen.add(key)
            text = p.text[s:e]
            context: frozenset[str] | None = None
            if split is not None:
                own = split.terms[i]
                context = (
                    own
                    | (split.terms[i - 1] if i > 0 else empty)
                    | (split.terms[i + 1] if i + 1 < len(spans) else empty)
                )
            else:
                own = term_set(text)
            out.append(
                Candidate(
                    passage=sp,
                    rank=rank,
                    start=p.start + s,
                    end=p.start + e,
                    text=text,
                    terms=own,
                    previous=p.text[slice(*spans[i - 1])] if i > 0 else "",
                    following=p.text[slice(*spans[i + 1])] if i + 1 < len(spans) else "",
                    context_terms=context,
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
    # Holds each kind of thing asked for beyond what the question names (see holds_novel).
    "type_novel",
    # Fills the question's slot: a number of what is counted, a rate, a name (holds_slot).
    "slot_novel",
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
        ctx_terms = (
            c.context_terms
            if c.context_terms is not None
            else c.terms | term_set(c.previous) | term_set(c.following)
        )
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
            float(bool(LEANS.match(c.text))),
            float(c.text.strip() == c.passage.passage.title.strip()),
            0.0,  # type_novel, filled below
            0.0,  # slot_novel, filled below
        )
    col = {name: j for j, name in enumerate(FEATURES)}
    X[:, col["cos_rel"]] = _rel(cos)
    X[:, col["cov_rel"]] = _rel(cov)
    X[:, col["passage_dense_rel"]] = _rel(dense)
    top_lex = lexical.max() if lexical.max() > 0 else 1.0
    X[:, col["passage_lexical_rel"]] = lexical / top_lex - 1.0
    spread = float(fused.max() - fused.min()) or 1.0
    X[:, col["passage_fused_rel"]] = (fused - fused.max()) / spread
    texts = [c.text for c in cands]
    for name, column in TEXT_FEATURES.items():
        X[:, col[name]] = column(question, texts)
    return Scored(list(cands), X, qterms, np.asarray(cos, dtype=np.float32))


# An answer must hold the kind of thing asked for *beyond what the question already
# names*: "How much did Microsoft pay for Sybari?" is not answered by a sentence whose
# only numbers or names are the question's own. Money is told apart from other amounts
# because "how much ... pay" is answered by a price, not by any number.
_MONEY_ASKED = re.compile(
    r"\bhow much\b.*\b(?:pay|paid|cost|costs|price|fee|fees|salary|worth|spend|spent|"
    r"raise|raised|fine|fined|prize|earn|earned|sell|sold|invest|invested|bid|loan)\b|"
    r"\bwhat (?:price|fee|salary|sum|fine)\b",
    re.I,
)
_MONEY = re.compile(
    r"[$£€¥]\s?\d|\d\s?(?:bn|m|p)\b|\d[\d,.]*\s?(?:million|billion|pounds|dollars|euros|pence|cents)\b",
    re.I,
)
_PLACE = re.compile(r"\b(?:in|at|near|from) ([A-Z][a-z]+)")


def _holds_novel(pattern: re.Pattern[str], text: str, question: str, group: int = 0) -> bool:
    asked = question.lower()
    return any(m.group(group).lower().strip() not in asked for m in pattern.finditer(text))


def _novel_patterns(question: str) -> list[tuple[re.Pattern[str], int]]:
    """What shows each kind of thing the question asks for (when, how many/much, who,
    where), with the regex group that holds it; read once per question, not per text."""
    qtypes = question_types(question)
    out: list[tuple[re.Pattern[str], int]] = []
    if qtypes["quantity"]:
        out.append((_MONEY if _MONEY_ASKED.search(question) else _HOLDS["quantity"], 0))
    if qtypes["when"]:
        out.append((_HOLDS["when"], 0))
    if qtypes["who"]:
        out.append((_HOLDS["who"], 0))
    if qtypes["where"]:
        out.append((_PLACE, 1))
    return out


def holds_novel(question: str, text: str) -> list[bool]:
    """For each kind of thing the question asks for (when, how many/much, who, where):
    does ``text`` hold one that the question does not already name?"""
    return [_holds_novel(p, text, question, g) for p, g in _novel_patterns(question)]


def type_novel(question: str, texts: Sequence[str]) -> np.ndarray:
    """1 for each text holding every kind of thing asked for beyond the question's own
    names and numbers; 0 when it misses one, or when the question asks for none."""
    patterns = _novel_patterns(question)
    if not patterns:
        return np.zeros(len(texts), dtype=np.float32)
    return np.array(
        [float(all(_holds_novel(p, t, question, g) for p, g in patterns)) for t in texts],
        dtype=np.float32,
    )


# The slot a question asks to fill, finer than its type: "How many Citigroup traders ..."
# is answered by a number *of traders*, "What interest rate ..." by a percentage, "Which
# French magazine ..." by a name. Questions nobody answered in the corpus are most often
# of this kind: the retrieved sentence names everything the question does and holds a
# value of the right type (a number, a name) that is not the one asked for.
_NUMBER = (
    r"(?:\d[\d,.]*|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|\w+teen|"
    r"twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundreds?|thousands?|millions?|"
    r"billions?|dozens?|several|a few)"
)
_NUMBER_WORD = re.compile(rf"\b{_NUMBER}\b", re.I)
_HOW_MANY = re.compile(r"\b(?:how many|number of)\s+((?:[\w'-]+\s+){0,1}[\w'-]+)", re.I)
_PERCENT_ASKED = re.compile(
    r"\b(?:what|how much|how high|by how much)\b.*\b(?:rate|percentage|per cent|percent|"
    r"share|proportion|inflation|unemployment|growth|turnout|margin)\b",
    re.I,
)
_PERCENT = re.compile(r"\d[\d.]*\s?(?:%|per ?cent\b|percentage points?\b)", re.I)
_DURATION_ASKED = re.compile(r"\bhow long\b|\bwhat (?:was|is) (?:[\w'’-]+\s){0,3}time\b", re.I)
_DURATION = re.compile(
    rf"\b{_NUMBER}[\s-]*(?:seconds?|secs?|minutes?|mins?|hours?|hrs?|days?|weeks?|months?|"
    r"years?|decades?)\b|\b\d+(?:[:.]\d\d){1,2}\b|\b\d+(?:\.\d+)?s\b",
    re.I,
)
_ENTITY_ASKED = re.compile(
    r"^\s*(?:who|whom|whose)\b|\bwhich\b(?!\s+(?:year|month|day|date|time|season)s?\b)|"
    r"\bnames?\s+of\b|\bwhat (?:is|was|were|are) (?:the |their |its |his |her )?names?\b|"
    r"\bcalled\s*\?\s*$",
    re.I,
)
SLOTS = ("count", "money", "percent", "duration", "entity")


def asked_slot(question: str) -> tuple[str, frozenset[str]] | None:
    """The slot ``question`` asks to fill (one of ``SLOTS``), with the stems of the counted
    noun for "how many X", or None when it asks for none of them."""
    m = _HOW_MANY.search(question)
    if m:
        nouns = frozenset(t for t in terms(m.group(1)) if not _NUMBER_WORD.fullmatch(t))
        if nouns:
            return "count", nouns
    if _MONEY_ASKED.search(question):
        return "money", frozenset()
    if _PERCENT_ASKED.search(question):
        return "percent", frozenset()
    if _DURATION_ASKED.search(question):
        return "duration", frozenset()
    if _ENTITY_ASKED.search(question):
        return "entity", frozenset()
    return None


def _counts(text: str, nouns: frozenset[str], question: str) -> bool:
    # A number the question does not name, followed within four words by the counted noun
    # ("11bn euros", "3,000 Citigroup traders").
    asked = question.lower()
    for m in _NUMBER_WORD.finditer(text):
        if m.group(0).lower() in asked:
            continue
        after = terms(" ".join(text[m.end() :].split()[:4]))
        if any(term_matches(t, nouns) for t in after):
            return True
    return False


_SLOT_PATTERNS = {
    "money": _MONEY,
    "percent": _PERCENT,
    "duration": _DURATION,
    "entity": _HOLDS["who"],
}


def _fills(slot: tuple[str, frozenset[str]], text: str, question: str) -> bool:
    kind, nouns = slot
    if kind == "count":
        return _counts(text, nouns, question)
    return _holds_novel(_SLOT_PATTERNS[kind], text, question)


def holds_slot(question: str, text: str) -> bool | None:
    """Does ``text`` fill the slot the question asks for with something the question does
    not already say? None when the question asks for no slot."""
    slot = asked_slot(question)
    return None if slot is None else _fills(slot, text, question)


def slot_novel(question: str, texts: Sequence[str]) -> np.ndarray:
    """1 for each text that fills the question's slot (see :func:`holds_slot`), else 0."""
    slot = asked_slot(question)  # once per question: it stems the counted noun
    if slot is None:
        return np.zeros(len(texts), dtype=np.float32)
    return np.array([float(_fills(slot, t, question)) for t in texts], dtype=np.float32)


# Features computed from the question and the candidates' text alone (filled after the rest;
# the training script can add them to a featurised cache without retrieving again).
TEXT_FEATURES: dict[str, Callable[[str, Sequence[str]], np.ndarray]] = {
    "type_novel": type_novel,
    "slot_novel": slot_novel,
}


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
    # Question words the best sentence's own article never uses (the passages as a whole
    # mention most of them: ten passages from many articles).
    "doc_missing_idf_share",
    "doc_missing_max_idf",
    # How sure the scorer is of one sentence: the best's probability, and the entropy.
    "best_probability",
    "entropy",
    "asks_type",
    "type_held_top3",
    "type_novel_best",
    "type_novel_top3",
    "type_novel_mass",
    "asks_slot",
    "slot_best",
    "slot_top3",
    "slot_mass",
)


def answerability_features(
    question: str, scored: Scored, logits: np.ndarray, idf: Callable[[str], float]
) -> np.ndarray:
    """Question-level evidence that the retrieved text holds an answer at all."""
    x = np.zeros(len(ANSWERABILITY_FEATURES), dtype=np.float32)
    if not scored.candidates:
        x[ANSWERABILITY_FEATURES.index("missing_idf_share")] = 1.0
        x[ANSWERABILITY_FEATURES.index("doc_missing_idf_share")] = 1.0
        return x
    col = {name: j for j, name in enumerate(FEATURES)}
    order = np.argsort(-logits, kind="stable")
    best = int(order[0])
    srt = logits[order]
    cands = scored.candidates
    all_terms = frozenset().union(*(c.terms for c in cands))
    # term_set: memoised, and featurize has already stemmed these headlines.
    titles = frozenset().union(*(term_set(c.passage.passage.title) for c in cands))
    known = all_terms | titles
    best_doc = cands[best].doc_id
    doc_terms = frozenset().union(*(c.terms for c in cands if c.doc_id == best_doc)) | term_set(
        cands[best].passage.passage.title
    )
    weights = {t: idf(t) for t in scored.question_terms}
    total = sum(weights.values()) or 1.0
    missing = [w for t, w in weights.items() if not term_matches(t, known)]
    doc_missing = [w for t, w in weights.items() if not term_matches(t, doc_terms)]
    X = scored.X
    qtypes = question_types(question)
    probabilities = np.exp(logits - srt[0])
    probabilities /= probabilities.sum()
    entropy = -float((probabilities * np.log(probabilities + 1e-12)).sum())
    asked = [t for t in ("when", "quantity", "who", "where") if qtypes[t]]
    top3 = [int(i) for i in order[:3]]
    if asked:
        # featurize's type_novel column already says which sentences hold all of it.
        novel = X[:, col["type_novel"]] > 0
        held_top3 = float(any(X[i, col["type_match"]] > 0 for i in top3))
        novel_best = float(novel[best])
        novel_top3 = float(any(novel[i] for i in top3))
        novel_mass = float(sum(probabilities[i] for i in (int(j) for j in order[:5]) if novel[i]))
    else:
        held_top3 = novel_best = novel_top3 = novel_mass = 0.0
    asks_slot = asked_slot(question) is not None
    slot = X[:, col["slot_novel"]] > 0
    slot_best = float(slot[best])
    slot_top3 = float(any(slot[i] for i in top3))
    slot_mass = float(sum(probabilities[i] for i in (int(j) for j in order[:5]) if slot[i]))
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
        sum(doc_missing) / total,
        max(doc_missing, default=0.0),
        probabilities[best],
        entropy / math.log(max(2, len(probabilities))),
        float(bool(asked)),
        held_top3,
        novel_best,
        novel_top3,
        novel_mass,
        float(asks_slot),
        slot_best,
        slot_top3,
        slot_mass,
    )
    return x
