"""The fast feature code gives the features the answer model was trained on.

``featurize`` and the retriever's re-scoring use :class:`dossier.text.TermMatcher` and
memoised terms and sentence spans instead of calling ``coverage``/``term_matches`` per
(term, sentence). The learned model is fit on these features, so they must not move:
the reference below is the per-candidate implementation they replaced, verbatim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from dossier.answer.selection import (
    _HOLDS,
    _QUOTE,
    FEATURES,
    LEANS,
    TEXT_FEATURES,
    Candidate,
    _rel,
    candidates,
    featurize,
    question_types,
)
from dossier.engine import Dossier
from dossier.models import ScoredPassage
from dossier.text import TermMatcher, coverage, sentence_spans, term_matches, terms
from tests.conftest import SEED_QUESTIONS

# The features the reference below computes; the text-only ones were added after it.
BASE_FEATURES = tuple(f for f in FEATURES if f not in TEXT_FEATURES)
assert FEATURES[: len(BASE_FEATURES)] == BASE_FEATURES

QUESTIONS = (*SEED_QUESTIONS, "How much did Microsoft pay to buy Lookout Software?")


def reference_candidates(passages: Sequence[ScoredPassage]) -> list[Candidate]:
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for rank, sp in enumerate(passages):
        p = sp.passage
        spans = sentence_spans(p.text)
        for i, (s, e) in enumerate(spans):
            key = (p.doc_id, p.start + s)
            if key in seen:
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
                    terms=frozenset(terms(text)),
                    previous=p.text[slice(*spans[i - 1])] if i > 0 else "",
                    following=p.text[slice(*spans[i + 1])] if i + 1 < len(spans) else "",
                )
            )
    return out


def reference_features(
    question: str,
    question_vector: np.ndarray,
    cands: Sequence[Candidate],
    idf: Callable[[str], float],
    embed: Callable[[Sequence[str]], np.ndarray],
) -> np.ndarray:
    qterms = list(dict.fromkeys(terms(question)))
    n = len(cands)
    X = np.zeros((n, len(BASE_FEATURES)), dtype=np.float32)
    cos = embed([c.text for c in cands]) @ question_vector
    qtypes = question_types(question)
    asked = [t for t in ("when", "quantity", "who", "where") if qtypes[t]]
    weights = {t: idf(t) for t in qterms}
    total_idf = sum(weights.values()) or 1.0
    cov = np.array([coverage(qterms, c.terms, idf) for c in cands], dtype=np.float32)
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
        ctx_terms = c.terms | frozenset(terms(f"{c.previous} {c.following}"))
        title_terms = frozenset(terms(c.passage.passage.title))
        novel = [t for t in c.terms if not term_matches(t, frozenset(qterms))]
        words = len(c.text.split())
        holds = [bool(_HOLDS[t].search(c.text)) for t in asked]
        X[i] = (
            cos[i],
            0.0,
            1.0 / (1.0 + cos_rank[i]),
            cov[i],
            0.0,
            coverage(qterms, ctx_terms, idf),
            coverage(qterms, c.terms | title_terms, idf),
            sum(w for t, w in weights.items() if term_matches(t, c.terms))
            / total_idf
            * math.log1p(total_idf),
            len(novel) / max(1, len(c.terms)),
            float(any(holds)) if asked else 0.0,
            float(not any(holds)) if asked else 0.0,
            float(qtypes["why"] and bool(_HOLDS["why"].search(c.text))),
            1.0 / (1.0 + c.rank),
            dense[i],
            0.0,
            0.0,
            0.0,
            len(passages_per_doc[docs[i]]) / n_passages,
            math.log1p(max(0, c.start) / 200.0),
            float(c.start < 400),
            math.log1p(words),
            float(words < 6),
            float(bool(_QUOTE.search(c.text))),
            float(bool(LEANS.match(c.text))),
            float(c.text.strip() == c.passage.passage.title.strip()),
        )
    col = {name: j for j, name in enumerate(BASE_FEATURES)}
    X[:, col["cos_rel"]] = _rel(cos)
    X[:, col["cov_rel"]] = _rel(cov)
    X[:, col["passage_dense_rel"]] = _rel(dense)
    top_lex = lexical.max() if lexical.max() > 0 else 1.0
    X[:, col["passage_lexical_rel"]] = lexical / top_lex - 1.0
    spread = float(fused.max() - fused.min()) or 1.0
    X[:, col["passage_fused_rel"]] = (fused - fused.max()) / spread
    return X


@pytest.mark.parametrize("question", QUESTIONS)
def test_features_match_the_reference_implementation(seed_engine: Dossier, question: str) -> None:
    r = seed_engine.retrieve(question, top_k=8)
    assert r.context.embed is not None and r.context.question_vector is not None
    ref_cands = reference_candidates(r.passages)
    cands = candidates(r.passages)
    assert cands == ref_cands
    expected = reference_features(
        question, r.context.question_vector, ref_cands, r.context.idf, r.context.embed
    )
    got = featurize(question, r.context.question_vector, cands, r.context.idf, r.context.embed)
    base = got.X[:, : len(BASE_FEATURES)]
    assert base.shape == expected.shape and len(cands) > 5
    assert float(np.abs(base - expected).max()) <= 1e-5
    # The text-only features come last, each from its own function.
    texts = [c.text for c in cands]
    for j, name in enumerate(FEATURES[len(BASE_FEATURES) :], len(BASE_FEATURES)):
        assert np.array_equal(got.X[:, j], TEXT_FEATURES[name](question, texts))


def test_term_matcher_agrees_with_term_matches_and_coverage() -> None:
    # Prefix matches both ways, short terms (exact only), terms absent from the question.
    question = ["iran", "albania", "cyb", "attack", "rama", "expel", "un"]
    texts = [
        {"iranian", "albanian", "attacks"},
        {"ira", "alban", "cyber", "un", "unit"},
        {"cyb", "expel", "expelled", "ramadan"},
        {"at", "tack", "ran"},
        set(),
        {"rama"},
    ]
    idf = {t: 1.0 + i / 3 for i, t in enumerate(question)}.__getitem__
    match = TermMatcher(question, idf)
    for text in texts:
        assert match.coverage(text) == coverage(question, text, idf)
        for q in question:
            assert match.matches(q, text) == term_matches(q, text)
        assert sorted(match.unmatched(text)) == sorted(
            t for t in text if not term_matches(t, frozenset(question))
        )
    assert TermMatcher([], idf).coverage({"iran"}) == 0.0
