"""Retrievers: dense (the store's vector index), lexical (BM25) and their fusion."""

from __future__ import annotations

import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from dossier.index.embeddings import embed_array
from dossier.index.filters import PassageFilter
from dossier.index.lexical import LexicalIndex, LexicalIndexes
from dossier.index.store import PassageStore
from dossier.models import ScoredPassage
from dossier.text import TermMatcher, terms

log = logging.getLogger(__name__)

__all__ = [
    "BM25Retriever",
    "DenseRetriever",
    "HybridRetriever",
    "LexicalIndex",  # lives in dossier.lexical; imported from here by the answerer's callers
    "Retriever",
]


class Retriever(ABC):
    """Ranks passages of one collection for a query."""

    @abstractmethod
    def retrieve(
        self, query: str, collection: str, k: int, filters: PassageFilter | None = None
    ) -> list[ScoredPassage]:
        """The top k passages for ``query``; with ``filters``, the top k of those it matches
        (filtered while ranking, not after, so k come back when k match)."""


class DenseRetriever(Retriever):
    def __init__(self, store: PassageStore, embedder: BaseEmbedding) -> None:
        self.store = store
        self.embedder = embedder

    def embed_query(self, query: str) -> np.ndarray:
        vector: np.ndarray = embed_array(self.embedder, [query])[0]
        return vector

    def retrieve(
        self, query: str, collection: str, k: int, filters: PassageFilter | None = None
    ) -> list[ScoredPassage]:
        return self.retrieve_vector(self.embed_query(query), collection, k, filters)

    def retrieve_vector(
        self, vector: np.ndarray, collection: str, k: int, filters: PassageFilter | None = None
    ) -> list[ScoredPassage]:
        return [
            ScoredPassage(passage=p, score=sim, dense_similarity=sim)
            for p, sim in self.store.query(collection, vector, k, filters)
        ]


class BM25Retriever(Retriever):
    """BM25 over the collection's saved, memory-mapped index, following its version.

    ``directory`` is where ingestion saves the indexes (``Settings.lexical_path``); without
    one, each process builds its index in memory from the store's passages.
    """

    def __init__(
        self,
        store: PassageStore,
        *,
        k1: float = 0.9,
        b: float = 0.4,
        directory: Path | None = None,
        check_s: float = 0.0,
        stored_sentences: bool = True,
    ) -> None:
        self.store = store
        self.k1 = k1
        self.b = b
        self.indexes = LexicalIndexes(
            store, directory, k1=k1, b=b, check_s=check_s, stored_sentences=stored_sentences
        )

    def index(self, collection: str) -> LexicalIndex:
        return self.indexes.get(collection)

    def retrieve(
        self, query: str, collection: str, k: int, filters: PassageFilter | None = None
    ) -> list[ScoredPassage]:
        hits = self.index(collection).search(terms(query), k, filters)
        return [ScoredPassage(passage=p, score=s, lexical_score=s) for p, s in hits]


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

    def retrieve(
        self, query: str, collection: str, k: int, filters: PassageFilter | None = None
    ) -> list[ScoredPassage]:
        return self.retrieve_with_vector(
            query, self.dense.embed_query(query), collection, k, filters
        )

    def retrieve_with_vector(
        self,
        query: str,
        vector: np.ndarray,
        collection: str,
        k: int,
        filters: PassageFilter | None = None,
    ) -> list[ScoredPassage]:
        # Both lists are filtered while ranked, so their fusion (and the rerank, which
        # only reorders them) holds only matching passages, and enough of them.
        depth = max(k, self.candidate_k)
        dense = self.dense.retrieve_vector(vector, collection, depth, filters)
        lexical = self.lexical.retrieve(query, collection, depth, filters)
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
        # terms of saved (or cached) sentences against the query, no model call.
        index = self.lexical.index(collection)
        match = TermMatcher(list(dict.fromkeys(terms(query))), index.idf)
        head = []
        for pid, score in ranked[: self.rerank_depth]:
            best = max(
                (match.coverage(st) for st in index.passage_sentences(by_id[pid].passage).terms),
                default=0.0,
            )
            head.append((pid, score + self.rerank_weight * best))
        head.sort(key=lambda kv: kv[1], reverse=True)
        return head + ranked[self.rerank_depth :]
