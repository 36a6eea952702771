"""The Dossier engine: one object that the CLI, the HTTP service and the evals share.

It wires the backends named in the settings (store, embedder, answerer) and
does the per-request work: validate, retrieve, answer, time. Everything heavy
is built on first use, never at import or construction.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Generator, Sequence
from dataclasses import dataclass, replace
from functools import cached_property, partial

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from dossier.answer.base import AnswerContext, Answerer, StreamEvent
from dossier.answer.registry import build_answerer
from dossier.chat.condense import (
    Condenser,
    Message,
    Standalone,
    bounded_history,
    shown_sentences,
)
from dossier.errors import InvalidInput
from dossier.index.embeddings import build_embedder, embed_array, embedder_id
from dossier.index.filters import PassageFilter, active
from dossier.index.retrieval import BM25Retriever, DenseRetriever, HybridRetriever
from dossier.index.sentence_vectors import SentenceVectors
from dossier.index.store import PassageStore, StoredDocument
from dossier.index.stores import build_store
from dossier.models import Answer, CollectionInfo, DocumentInfo, ScoredPassage
from dossier.settings import Settings
from dossier.verify.conflicts import flag_conflicts


@dataclass(frozen=True)
class Retrieved:
    question: str
    passages: list[ScoredPassage]
    context: AnswerContext
    started: float  # perf_counter() at the request's start
    retrieved: float
    # In a conversation: what the latest message was taken to ask.
    standalone: Standalone | None = None
    # What retrieval was restricted to (None: nothing).
    filters: PassageFilter | None = None

    def timed(self, result: Answer) -> Answer:
        if self.standalone is not None:
            result.standalone_question = self.standalone.question
        if result.refused and not self.passages and self.filters is not None:
            # Say why nothing was found: the filters, not the corpus, left no passage.
            result.refusal_reason = f"no passage matches the filters ({self.filters.describe()})"
        done = time.perf_counter()
        result.timings = {
            "retrieve_ms": round((self.retrieved - self.started) * 1000, 2),
            "answer_ms": round((done - self.retrieved) * 1000, 2),
            "total_ms": round((done - self.started) * 1000, 2),
        }
        return result


class Dossier:
    def __init__(
        self,
        settings: Settings,
        *,
        store: PassageStore | None = None,
        embedder: BaseEmbedding | None = None,
        answerer: Answerer | None = None,
    ) -> None:
        self.settings = settings
        self._store = store
        self._embedder = embedder
        self._answerer = answerer
        self._opened: set[str] = set()
        # Most recently used last; see _embed_texts.
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_lock = threading.Lock()

    # -- backends, built lazily --------------------------------------------
    @property
    def store(self) -> PassageStore:
        if self._store is None:
            self._store = build_store(self.settings)
        return self._store

    @property
    def embedder(self) -> BaseEmbedding:
        if self._embedder is None:
            self._embedder = build_embedder(self.settings)
        return self._embedder

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            self._answerer = build_answerer(self.settings)
        return self._answerer

    @cached_property
    def condenser(self) -> Condenser:
        from dossier.chat.condense import LLMCondenser, OfflineCondenser

        s = self.settings
        use_llm = s.chat_condenser == "llm" or (
            s.chat_condenser == "auto" and bool(s.llm_base_url and s.llm_model)
        )
        if not use_llm:
            return OfflineCondenser()
        from dossier.llm.client import OpenAIChat

        return LLMCondenser(OpenAIChat.from_settings(s))

    @cached_property
    def dense(self) -> DenseRetriever:
        return DenseRetriever(self.store, self.embedder)

    @cached_property
    def lexical(self) -> BM25Retriever:
        s = self.settings
        return BM25Retriever(
            self.store,
            k1=s.bm25_k1,
            b=s.bm25_b,
            directory=s.lexical_path,
            check_s=s.version_check_s,
            stored_sentences=s.stored_sentences,
        )

    @cached_property
    def retriever(self) -> HybridRetriever:
        s = self.settings
        return HybridRetriever(
            self.dense,
            self.lexical,
            dense_weight=s.dense_weight,
            candidate_k=s.candidate_k,
            fusion=s.fusion,
            rerank_depth=s.rerank_depth,
            rerank_weight=s.rerank_weight,
        )

    # -- validation ----------------------------------------------------------
    def forget(self, name: str) -> None:
        """Drop what this engine cached about a collection (after it was deleted)."""
        self._opened.discard(name)
        if "lexical" in self.__dict__:  # only if the BM25 retriever was built
            self.lexical.indexes.forget(name)

    def collection(self, name: str | None) -> str:
        name = name or self.settings.default_collection
        if name not in self._opened:
            # Raises CollectionNotFound or EmbedderMismatch with a message saying what to do.
            self.store.open_collection(name, embedder_id(self.embedder))
            self._opened.add(name)
        return name

    def _check_question(self, question: str) -> str:
        q = question.strip()
        if not q:
            raise InvalidInput("The question is empty; send a non-empty 'question'.")
        if len(q) > self.settings.max_question_chars:
            raise InvalidInput(
                f"The question has {len(q)} characters; the limit is "
                f"{self.settings.max_question_chars}. Shorten it."
            )
        return q

    def _check_k(self, k: int | None) -> int:
        k = self.settings.top_k if k is None else k
        if not 1 <= k <= self.settings.max_top_k:
            raise InvalidInput(f"k/top_k must be between 1 and {self.settings.max_top_k}; got {k}.")
        return k

    def warm_up(self) -> None:
        """Load the model, the sentence splitter, and the default collection's indexes."""
        from dossier.text import sentence_spans

        sentence_spans("Warm up. Twice.")
        vector = self.dense.embed_query("warm up")
        names = {c.name for c in self.collections()}
        if self.settings.default_collection in names:
            name = self.collection(None)
            self.lexical.index(name)  # mapped from the saved index, not rebuilt
            self.dense.retrieve_vector(vector, name, 1)  # Chroma loads its HNSW index

    # -- operations ----------------------------------------------------------
    def search(
        self,
        query: str,
        collection: str | None = None,
        k: int | None = None,
        *,
        filters: PassageFilter | None = None,
    ) -> list[ScoredPassage]:
        q = self._check_question(query)
        k = self._check_k(k)
        return self.retriever.retrieve(q, self.collection(collection), k, active(filters))

    def retrieve(
        self,
        question: str,
        collection: str | None = None,
        top_k: int | None = None,
        *,
        filters: PassageFilter | None = None,
    ) -> Retrieved:
        """Validate and retrieve: the part of ``ask`` that comes before any answering.

        ``filters`` restricts the passages to some documents, dates or a publisher; when it
        leaves none, the answer is a refusal that says so.
        """
        t0 = time.perf_counter()
        q = self._check_question(question)
        k = self._check_k(top_k)
        name = self.collection(collection)
        wanted = active(filters)
        vector = self.dense.embed_query(q)
        passages = self.retriever.retrieve_with_vector(q, vector, name, k, wanted)
        retrieved = time.perf_counter()
        index = self.lexical.index(name)
        stored = (
            index.sentence_vectors(embedder_id(self.embedder))
            if self.settings.sentence_vectors
            else None
        )
        context = AnswerContext(
            collection=name,
            idf=index.idf,
            embed=self._embed_texts
            if stored is None
            else partial(self._embed_texts, stored=stored),
            question_vector=vector,
            sentences=index.passage_sentences,
            answerable_threshold=self.settings.answerable_thresholds.get(name),
        )
        return Retrieved(q, passages, context, t0, retrieved, filters=wanted)

    def chat_retrieve(
        self,
        messages: Sequence[Message],
        collection: str | None = None,
        top_k: int | None = None,
        *,
        filters: PassageFilter | None = None,
    ) -> Retrieved:
        """Retrieve for a conversation's latest message, read as a standalone question."""
        t0 = time.perf_counter()
        s = self.settings
        history, question = bounded_history(messages, s.chat_max_turns, s.chat_max_history_chars)
        self._check_question(question)
        name = self.collection(collection)
        standalone = self.condenser.condense(history, question, self.lexical.index(name).idf)
        # The carried words must not push a valid question over the length limit.
        searched = standalone.question[: s.max_question_chars]
        r = self.retrieve(searched, name, top_k, filters=filters)
        seen = shown_sentences(history) if s.chat_skip_shown else frozenset()
        return replace(
            r,
            standalone=replace(standalone, question=searched),
            started=t0,
            context=replace(r.context, seen=seen, in_conversation=bool(history)),
        )

    def chat(
        self,
        messages: Sequence[Message],
        collection: str | None = None,
        top_k: int | None = None,
        answerer: Answerer | None = None,
        *,
        filters: PassageFilter | None = None,
    ) -> Answer:
        """Answer a conversation's latest message in the light of the earlier turns."""
        return self.answer(
            self.chat_retrieve(messages, collection, top_k, filters=filters), answerer
        )

    def answer(self, retrieved: Retrieved, answerer: Answerer | None = None) -> Answer:
        """Answer what was retrieved (by ``retrieve`` or ``chat_retrieve``), timed."""
        r = retrieved
        return r.timed(
            self._checked((answerer or self.answerer).answer(r.question, r.passages, r.context), r)
        )

    def _checked(self, answer: Answer, retrieved: Retrieved) -> Answer:
        """The answer with the retrieved sources that contradict it (when that is on)."""
        if not self.settings.conflict_detection:
            return answer
        name, k, wanted = (
            retrieved.context.collection,
            self.settings.conflict_search_k,
            retrieved.filters,
        )

        def search(sentence: str) -> list[ScoredPassage]:
            # BM25 on the sentence itself: another report of the same fact shares its
            # words, whatever the question was; cheap (no embedding), and it keeps the
            # request's filters (the reader chose those sources).
            return self.lexical.retrieve(sentence, name, k, wanted)

        return flag_conflicts(answer, retrieved.passages, search=search if k else None)

    def ask(
        self,
        question: str,
        collection: str | None = None,
        top_k: int | None = None,
        answerer: Answerer | None = None,
        *,
        filters: PassageFilter | None = None,
    ) -> Answer:
        return self.answer(self.retrieve(question, collection, top_k, filters=filters), answerer)

    def answer_stream(
        self, retrieved: Retrieved, answerer: Answerer | None = None
    ) -> Generator[StreamEvent, None, None]:
        """Text deltas, then the final Answer; answerers that cannot stream give one Answer.

        The caller may stop reading at any time; closing the iterator stops generation.
        """
        chosen = answerer or self.answerer
        r = retrieved
        for event in chosen.stream(r.question, r.passages, r.context):
            yield r.timed(self._checked(event, r)) if isinstance(event, Answer) else event

    def _embed_texts(
        self, texts: Sequence[str], stored: SentenceVectors | None = None
    ) -> np.ndarray:
        """Vectors for answer candidates: those saved at ingest (``stored``), then a bounded
        cache of recent sentences (for sentences with none saved), then the embedder."""
        if not texts:
            return embed_array(self.embedder, [])
        known = stored.lookup(texts) if stored is not None else {}
        left = [t for t in dict.fromkeys(texts) if t not in known]
        size = self.settings.sentence_cache_size
        if left and not size:
            known.update(zip(left, embed_array(self.embedder, left), strict=True))
        elif left:
            with self._cache_lock:
                known.update({t: self._vectors[t] for t in left if t in self._vectors})
            todo = [t for t in left if t not in known]
            if todo:
                known.update(zip(todo, embed_array(self.embedder, todo), strict=True))
            with self._cache_lock:
                for t in left:
                    self._vectors[t] = known[t]
                    self._vectors.move_to_end(t)
                while len(self._vectors) > size:
                    self._vectors.popitem(last=False)
        return np.stack([known[t] for t in texts])

    def collections(self) -> list[CollectionInfo]:
        return self.store.list_collections()

    def documents(self, collection: str | None = None) -> list[DocumentInfo]:
        docs = self.store.documents(self.collection(collection))
        return sorted(docs.values(), key=lambda d: d.source_path)

    def document(self, doc_id: str, collection: str | None = None) -> StoredDocument:
        return self.store.get_document(self.collection(collection), doc_id)
