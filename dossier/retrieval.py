"""Retrievers: dense (the store's vector index), lexical (BM25) and their fusion."""

from __future__ import annotations

import logging
import math
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from dossier.embeddings import embed_array
from dossier.models import Passage, ScoredPassage
from dossier.store import PassageStore
from dossier.text import coverage, indexed_text, sentence_spans, terms

log = logging.getLogger(__name__)


class Retriever(ABC):
    """Ranks passages of one collection for a query."""

    @abstractmethod
    def retrieve(self, query: str, collection: str, k: int) -> list[ScoredPassage]: ...


class DenseRetriever(Retriever):
    def __init__(self, store: PassageStore, embedder: BaseEmbedding) -> None:
        self.store = store
        self.embedder = embedder

    def embed_query(self, query: str) -> np.ndarray:
        vector: np.ndarray = embed_array(self.embedder, [query])[0]
        return vector

    def retrieve(self, query: str, collection: str, k: int) -> list[ScoredPassage]:
        return self.retrieve_vector(self.embed_query(query), collection, k)

    def retrieve_vector(self, vector: np.ndarray, collection: str, k: int) -> list[ScoredPassage]:
        return [
            ScoredPassage(passage=p, score=sim, dense_similarity=sim)
            for p, sim in self.store.query(collection, vector, k)
        ]


@dataclass
class LexicalIndex:
    """A BM25 index over one collection version, plus the document frequencies the answerer uses."""

    version: int
    passages: list[Passage]
    bm25: Any
    df: dict[str, int]
    _sentences: dict[str, list[frozenset[str]]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.passages)

    def idf(self, term: str) -> float:
        # BM25's idf, so coverage and ranking agree on what a rare word is.
        n = self.size
        df = self.df.get(term, 0)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def sentence_terms(self, passage: Passage) -> list[frozenset[str]]:
        """Each sentence's terms, computed once per passage and index version."""
        cached = self._sentences.get(passage.passage_id)
        if cached is None:
            cached = [frozenset(terms(passage.text[s:e])) for s, e in sentence_spans(passage.text)]
            self._sentences[passage.passage_id] = cached
        return cached


class BM25Retriever(Retriever):
    """bm25s over the collection's passages, rebuilt when the collection's version moves."""

    def __init__(self, store: PassageStore, *, k1: float = 0.9, b: float = 0.4) -> None:
        self.store = store
        self.k1 = k1
        self.b = b
        self._indexes: dict[str, LexicalIndex] = {}
        self._lock = threading.Lock()

    def index(self, collection: str) -> LexicalIndex:
        version = self.store.version(collection)
        cached = self._indexes.get(collection)
        if cached is not None and cached.version == version:
            return cached
        with self._lock:
            cached = self._indexes.get(collection)
            if cached is None or cached.version != version:
                cached = self._build(collection, version)
                self._indexes[collection] = cached
        return cached

    def _build(self, collection: str, version: int) -> LexicalIndex:
        import bm25s

        # bm25s sets its logger to DEBUG with its own handler at import, which
        # would print a line per index build into every server log.
        logging.getLogger("bm25s").setLevel(logging.WARNING)

        passages = self.store.all_passages(collection)
        tokens = [terms(indexed_text(p.title, p.text)) for p in passages]
        df: dict[str, int] = {}
        for toks in tokens:
            for t in set(toks):
                df[t] = df.get(t, 0) + 1
        bm25 = None
        if passages:
            bm25 = bm25s.BM25(k1=self.k1, b=self.b)
            bm25.index(tokens, show_progress=False)
        log.info("BM25 index for %s v%d: %d passages", collection, version, len(passages))
        return LexicalIndex(version=version, passages=passages, bm25=bm25, df=df)

    def retrieve(self, query: str, collection: str, k: int) -> list[ScoredPassage]:
        index = self.index(collection)
        query_terms = [t for t in terms(query) if t in index.df]
        if index.bm25 is None or not query_terms:
            return []
        k = min(k, index.size)
        docs, scores = index.bm25.retrieve([query_terms], k=k, show_progress=False, n_threads=1)
        return [
            ScoredPassage(passage=index.passages[int(i)], score=float(s), lexical_score=float(s))
            for i, s in zip(docs[0], scores[0], strict=True)
            if s > 0
        ]


def reciprocal_rank(lists: list[list[ScoredPassage]], weights: list[float]) -> dict[str, float]:
    out: dict[str, float] = {}
    for ranked, w in zip(lists, weights, strict=True):
        for rank, sp in enumerate(ranked):
            out[sp.passage.passage_id] = out.get(sp.passage.passage_id, 0.0) + w / (60 + rank + 1)
    return out


def relative_score(lists: list[list[ScoredPassage]], weights: list[float]) -> dict[str, float]:
    """Min-max normalised scores, weighted and summed (llama-index's "relative_score" fusion)."""
    out: dict[str, float] = {}
    for ranked, w in zip(lists, weights, strict=True):
        if not ranked:
            continue
        scores = [sp.score for sp in ranked]
        lo, hi = min(scores), max(scores)
        span = hi - lo or 1.0
        for sp in ranked:
            pid = sp.passage.passage_id
            out[pid] = out.get(pid, 0.0) + w * (sp.score - lo) / span
    return out


def zscore(lists: list[list[ScoredPassage]], weights: list[float]) -> dict[str, float]:
    """Standardised scores, weighted and summed; a passage missing from a list gets its floor."""
    out: dict[str, float] = {}
    ids = {sp.passage.passage_id for ranked in lists for sp in ranked}
    for ranked, w in zip(lists, weights, strict=True):
        if not ranked:
            continue
        scores = [sp.score for sp in ranked]
        mean = sum(scores) / len(scores)
        std = math.sqrt(sum((x - mean) ** 2 for x in scores) / len(scores)) or 1.0
        floor = (min(scores) - mean) / std
        seen = {sp.passage.passage_id: (sp.score - mean) / std for sp in ranked}
        for pid in ids:
            out[pid] = out.get(pid, 0.0) + w * seen.get(pid, floor)
    return out


FUSIONS: dict[str, Callable[[list[list[ScoredPassage]], list[float]], dict[str, float]]] = {
    "rrf": reciprocal_rank,
    "relative": relative_score,
    "zscore": zscore,
}


class HybridRetriever(Retriever):
    def __init__(
        self,
        dense: DenseRetriever,
        lexical: BM25Retriever,
        *,
        dense_weight: float = 0.5,
        candidate_k: int = 40,
        fusion: str = "zscore",
        rerank_depth: int = 20,
        rerank_weight: float = 2.0,
    ) -> None:
        self.dense = dense
        self.lexical = lexical
        self.dense_weight = dense_weight
        self.candidate_k = candidate_k
        self.fuse = FUSIONS[fusion]
        self.rerank_depth = rerank_depth
        self.rerank_weight = rerank_weight

    def retrieve(self, query: str, collection: str, k: int) -> list[ScoredPassage]:
        return self.retrieve_with_vector(query, self.dense.embed_query(query), collection, k)

    def retrieve_with_vector(
        self, query: str, vector: np.ndarray, collection: str, k: int
    ) -> list[ScoredPassage]:
        depth = max(k, self.candidate_k)
        dense = self.dense.retrieve_vector(vector, collection, depth)
        lexical = self.lexical.retrieve(query, collection, depth)
        fused = self.fuse([dense, lexical], [self.dense_weight, 1.0 - self.dense_weight])
        by_id: dict[str, ScoredPassage] = {}
        for sp in dense:
            by_id[sp.passage.passage_id] = sp
        for sp in lexical:
            prev = by_id.get(sp.passage.passage_id)
            by_id[sp.passage.passage_id] = (
                replace(prev, lexical_score=sp.lexical_score) if prev else sp
            )
        ranked = sorted(fused.items(), key=lambda kv: kv[1], reverse=True)
        if self.rerank_weight and ranked:
            ranked = self._rerank(query, collection, ranked, by_id)
        return [replace(by_id[pid], score=score) for pid, score in ranked[:k]]

    def _rerank(
        self,
        query: str,
        collection: str,
        ranked: list[tuple[str, float]],
        by_id: dict[str, ScoredPassage],
    ) -> list[tuple[str, float]]:
        # Whole-passage scores blur where the answer is; a passage holding one
        # sentence that covers most of the question is the better bet. Cheap:
        # terms of cached sentences against the query, no model call.
        index = self.lexical.index(collection)
        qterms = list(dict.fromkeys(terms(query)))
        head = []
        for pid, score in ranked[: self.rerank_depth]:
            best = max(
                (
                    coverage(qterms, st, index.idf)
                    for st in index.sentence_terms(by_id[pid].passage)
                ),
                default=0.0,
            )
            head.append((pid, score + self.rerank_weight * best))
        head.sort(key=lambda kv: kv[1], reverse=True)
        return head + ranked[self.rerank_depth :]
