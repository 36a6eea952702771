"""The Chroma backend, embedded on disk or as a client of a ``chroma run`` server.

Each Dossier collection is two Chroma collections: ``NAME`` holds the passages with
their embeddings; ``NAME__docs`` holds one record per document (cleaned text,
metadata, content hash, and the centroid of its passages).
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dossier.errors import (
    BackendUnavailable,
    CollectionNotFound,
    DocumentNotFound,
)
from dossier.index.filters import (
    DAY_KEY,
    PUBLISHER_KEY,
    PassageFilter,
    active,
    published_day,
    publisher_key,
)
from dossier.index.store import (
    DOCS_SUFFIX,
    EMBEDDER_KEY,
    VERSION_KEY,
    PassageStore,
    StoredDocument,
    check_embedder,
    validate_collection_name,
)
from dossier.models import CollectionInfo, DocumentInfo, PageSpan, Passage
from dossier.settings import Settings

log = logging.getLogger(__name__)


def _clean_meta(meta: dict[str, Any]) -> dict[str, Any]:
    # Chroma rejects None values; absent keys read back as None anyway.
    return {k: v for k, v in meta.items() if v is not None}


def _passage_meta(p: Passage) -> dict[str, Any]:
    return _clean_meta(
        {
            "doc_id": p.doc_id,
            "start": p.start,
            "end": p.end,
            "title": p.title,
            "publisher": p.publisher,
            "url": p.url,
            "published": p.published,
            "author": p.author,
            "page": p.page,
            # Chroma compares only numbers with $gte/$lte, and strings only exactly: the
            # forms a filter is matched against (dossier/index/filters.py).
            DAY_KEY: published_day(p.published),
            PUBLISHER_KEY: publisher_key(p.publisher),
        }
    )


def _where(filters: PassageFilter | None) -> dict[str, Any] | None:
    """A filter as a Chroma ``where`` clause, or None for none.

    Passages stored before the filter keys existed lack them, so date and publisher
    filters skip those until a re-ingest rewrites them (the ingest signature carries
    ``METADATA_VERSION`` for that); ``doc_id`` was always stored.
    """
    wanted = active(filters)
    if wanted is None:
        return None
    clauses: list[dict[str, Any]] = []
    if wanted.doc_ids is not None:
        clauses.append({"doc_id": {"$in": list(wanted.doc_ids)}})
    if wanted.publisher is not None:
        clauses.append({PUBLISHER_KEY: {"$eq": publisher_key(wanted.publisher)}})
    lo, hi = wanted.day_range
    if lo is not None:
        clauses.append({DAY_KEY: {"$gte": lo}})
    if hi is not None:
        clauses.append({DAY_KEY: {"$lte": hi}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}


def _passage_from(pid: str, text: str, meta: dict[str, Any]) -> Passage:
    return Passage(
        passage_id=pid,
        doc_id=str(meta["doc_id"]),
        text=text,
        start=int(meta["start"]),
        end=int(meta["end"]),
        title=str(meta.get("title", "")),
        publisher=meta.get("publisher"),
        url=meta.get("url"),
        published=meta.get("published"),
        author=meta.get("author"),
        page=None if meta.get("page") is None else int(meta["page"]),
    )


def _doc_meta(info: DocumentInfo) -> dict[str, Any]:
    return _clean_meta(
        {
            "title": info.title,
            "source_path": info.source_path,
            "content_hash": info.content_hash,
            "chunks": info.chunks,
            "publisher": info.publisher,
            "url": info.url,
            "published": info.published,
            "language": info.language,
            "tags": json.dumps(list(info.tags)),
            "duplicates": json.dumps(list(info.duplicates)),
            "author": info.author,
            "pages": json.dumps([[s.page, s.start, s.end] for s in info.pages])
            if info.pages
            else None,
        }
    )


def _doc_from(doc_id: str, collection: str, meta: dict[str, Any]) -> DocumentInfo:
    return DocumentInfo(
        doc_id=doc_id,
        collection=collection,
        title=str(meta.get("title", "")),
        source_path=str(meta.get("source_path", "")),
        content_hash=str(meta.get("content_hash", "")),
        chunks=int(meta.get("chunks", 0)),
        publisher=meta.get("publisher"),
        url=meta.get("url"),
        published=meta.get("published"),
        language=meta.get("language"),
        tags=tuple(json.loads(meta.get("tags", "[]"))),
        duplicates=tuple(json.loads(meta.get("duplicates", "[]"))),
        author=meta.get("author"),
        pages=tuple(PageSpan(*span) for span in json.loads(meta.get("pages", "[]"))),
    )


class ChromaStore(PassageStore):
    """Chroma, embedded on disk or as a client of a ``chroma run`` server."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._batch = max(1, int(client.get_max_batch_size()))
        # Per collection, for queries: the client, version tag, handle and passage count
        # they were read under (see EmbeddedChromaStore.query). Writes here drop them.
        self._handles: dict[str, tuple[Any, tuple[str, int], Any, int]] = {}

    # -- collections -------------------------------------------------------
    def _get(self, name: str) -> Any:
        try:
            return self._client.get_collection(name, embedding_function=None)
        except Exception as exc:  # Chroma raises different types per version and mode.
            if "does not exist" in str(exc) or "not found" in str(exc).lower():
                raise CollectionNotFound(name, self._names()) from None
            raise BackendUnavailable(f"Chroma failed to open {name!r}: {exc}") from exc

    def _names(self) -> list[str]:
        names = [getattr(c, "name", c) for c in self._client.list_collections()]
        return sorted(n for n in names if not n.endswith(DOCS_SUFFIX))

    def list_collections(self) -> list[CollectionInfo]:
        out = []
        for name in self._names():
            passages = self._get(name)
            docs = self._get(name + DOCS_SUFFIX)
            out.append(
                CollectionInfo(
                    name=name,
                    documents=docs.count(),
                    chunks=passages.count(),
                    embedder=str((passages.metadata or {}).get(EMBEDDER_KEY, "")),
                )
            )
        return out

    def open_collection(self, name: str, embedder_id: str, *, create: bool = False) -> None:
        if create:
            validate_collection_name(name)
            for full in (name, name + DOCS_SUFFIX):
                self._client.get_or_create_collection(
                    full,
                    metadata={EMBEDDER_KEY: embedder_id, VERSION_KEY: 0},
                    configuration={"hnsw": {"space": "cosine"}},
                    embedding_function=None,
                )
        check_embedder(name, (self._get(name).metadata or {}).get(EMBEDDER_KEY), embedder_id)

    def drop_collection(self, name: str) -> None:
        self._handles.pop(name, None)
        for full in (name, name + DOCS_SUFFIX):
            try:
                self._client.delete_collection(full)
            except Exception:  # already gone is fine: dropping is idempotent
                log.debug("collection %s was not there", full)

    def version(self, name: str) -> int:
        return int((self._get(name + DOCS_SUFFIX).metadata or {}).get(VERSION_KEY, 0))

    def version_tag(self, name: str) -> tuple[str, int]:
        docs = self._get(name + DOCS_SUFFIX)
        return str(docs.id), int((docs.metadata or {}).get(VERSION_KEY, 0))

    def bump_version(self, name: str) -> int:
        docs = self._get(name + DOCS_SUFFIX)
        meta = dict(docs.metadata or {})
        meta[VERSION_KEY] = int(meta.get(VERSION_KEY, 0)) + 1
        docs.modify(metadata=meta)
        return int(meta[VERSION_KEY])

    # -- documents ---------------------------------------------------------
    def _get_all(self, col: Any, include: list[str], **kw: Any) -> dict[str, list[Any]]:
        merged: dict[str, list[Any]] = {"ids": [], **{k: [] for k in include}}
        offset = 0
        while True:
            page = col.get(include=include, limit=self._batch, offset=offset, **kw)
            merged["ids"].extend(page["ids"])
            for key in include:
                merged[key].extend(page[key] or [])
            if len(page["ids"]) < self._batch:
                return merged
            offset += self._batch

    def documents(self, name: str) -> dict[str, DocumentInfo]:
        got = self._get_all(self._get(name + DOCS_SUFFIX), ["metadatas"])
        return {
            did: _doc_from(did, name, meta)
            for did, meta in zip(got["ids"], got["metadatas"], strict=True)
        }

    def get_document(self, name: str, doc_id: str) -> StoredDocument:
        got = self._get(name + DOCS_SUFFIX).get(ids=[doc_id], include=["metadatas", "documents"])
        if not got["ids"]:
            raise DocumentNotFound(doc_id, name)
        return StoredDocument(
            info=_doc_from(doc_id, name, got["metadatas"][0]), text=got["documents"][0]
        )

    def put_documents(
        self, name: str, docs: Sequence[StoredDocument], centroids: np.ndarray
    ) -> None:
        if not docs:
            return
        self._get(name + DOCS_SUFFIX).upsert(
            ids=[d.info.doc_id for d in docs],
            documents=[d.text for d in docs],
            metadatas=[_doc_meta(d.info) for d in docs],
            embeddings=centroids,
        )

    def delete_documents(self, name: str, doc_ids: Sequence[str]) -> None:
        if not doc_ids:
            return
        # The record goes first: passages left by a crash in between have no
        # record, and the next ingest sweeps such orphans.
        self._get(name + DOCS_SUFFIX).delete(ids=list(doc_ids))
        self._handles.pop(name, None)
        col = self._get(name)
        for start in range(0, len(doc_ids), 100):
            col.delete(where={"doc_id": {"$in": list(doc_ids[start : start + 100])}})

    # -- passages ----------------------------------------------------------
    def passage_refs(self, name: str) -> dict[str, str]:
        got = self._get_all(self._get(name), ["metadatas"])
        return {
            pid: str(meta["doc_id"]) for pid, meta in zip(got["ids"], got["metadatas"], strict=True)
        }

    def passage_vectors(self, name: str, passage_ids: Sequence[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        col = self._get(name)
        for start in range(0, len(passage_ids), self._batch):
            got = col.get(
                ids=list(passage_ids[start : start + self._batch]), include=["embeddings"]
            )
            out.update(
                (pid, np.asarray(vec, dtype=np.float32))
                for pid, vec in zip(got["ids"], got["embeddings"], strict=True)
            )
        return out

    def put_passages(self, name: str, passages: Sequence[Passage], vectors: np.ndarray) -> None:
        self._handles.pop(name, None)
        col = self._get(name)
        for start in range(0, len(passages), self._batch):
            part = passages[start : start + self._batch]
            col.upsert(
                ids=[p.passage_id for p in part],
                documents=[p.text for p in part],
                metadatas=[_passage_meta(p) for p in part],
                embeddings=vectors[start : start + self._batch],
            )

    def delete_passages(self, name: str, passage_ids: Sequence[str]) -> None:
        self._handles.pop(name, None)
        col = self._get(name)
        ids = list(passage_ids)
        for start in range(0, len(ids), self._batch):
            col.delete(ids=ids[start : start + self._batch])

    def all_passages(self, name: str) -> list[Passage]:
        got = self._get_all(self._get(name), ["documents", "metadatas"])
        return [
            _passage_from(pid, text, meta)
            for pid, text, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)
        ]

    def query(
        self, name: str, vector: np.ndarray, k: int, filters: PassageFilter | None = None
    ) -> list[tuple[Passage, float]]:
        col = self._get(name)
        return self._query(col, col.count(), vector, k, filters)

    def _query(
        self,
        col: Any,
        count: int,
        vector: np.ndarray,
        k: int,
        filters: PassageFilter | None = None,
    ) -> list[tuple[Passage, float]]:
        n = min(k, count)
        if n == 0:
            return []
        # Chroma filters before it ranks, so n results come back when n passages match.
        where = _where(filters)
        got = col.query(
            query_embeddings=[np.asarray(vector, dtype=np.float32)],
            n_results=n,
            include=["documents", "metadatas", "distances"],
            **({"where": where} if where is not None else {}),
        )
        return [
            (_passage_from(pid, text, meta), 1.0 - float(dist))
            for pid, text, meta, dist in zip(
                got["ids"][0],
                got["documents"][0],
                got["metadatas"][0],
                got["distances"][0],
                strict=True,
            )
        ]


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    # Telemetry would try the network, which users' air-gapped machines lack.
    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


class EmbeddedChromaStore(ChromaStore):
    """Chroma embedded on disk, followed across processes.

    An embedded Chroma keeps each collection's vector index in memory and never sees
    vectors that another process (``dossier ingest``, another worker) added; only its
    SQLite tables (counts, metadata, the version) are current. So a query first checks
    the collection's version, at most every ``check_s`` seconds, and re-opens the client
    when it moved. Requests already running finish on the old client.
    """

    def __init__(self, path: Path, check_s: float) -> None:
        self.path = path
        self.check_s = check_s
        self._seen: dict[str, tuple[str, int]] = {}
        self._checked: dict[str, float] = {}
        self._reopen = threading.Lock()
        super().__init__(self._open())

    def _open(self) -> Any:
        import chromadb
        from chromadb.api.shared_system_client import SharedSystemClient

        # Chroma shares one client "system" per path within a process; forget it (without
        # stopping it: running requests still use it) so the new client loads from disk.
        SharedSystemClient._identifier_to_system.pop(str(self.path), None)
        return chromadb.PersistentClient(path=str(self.path), settings=_chroma_settings())

    def query(
        self, name: str, vector: np.ndarray, k: int, filters: PassageFilter | None = None
    ) -> list[tuple[Passage, float]]:
        now = time.monotonic()
        if now - self._checked.get(name, -math.inf) >= self.check_s:
            self._checked[name] = now
            tag = self.version_tag(name)
            if self._seen.setdefault(name, tag) != tag:
                with self._reopen:
                    if self._seen.get(name) != tag:
                        log.info("%s is at version %d: re-opening Chroma", name, tag[1])
                        self._client = self._open()
                        self._seen = {name: tag}
        # Opening the collection and counting its passages were two SQLite round trips per
        # request. Both change only with the collection's version (another process's
        # ingest bumps it after writing; a re-created collection has a new uid) or through
        # this store's own writes, which drop the entry; so they are reused until then.
        client, seen = self._client, self._seen.get(name)
        cached = self._handles.get(name)
        if seen is not None and cached is not None and cached[0] is client and cached[1] == seen:
            col, count = cached[2], cached[3]
        else:
            col = self._get(name)
            count = col.count()
            if seen is not None:
                self._handles[name] = (client, seen, col, count)
        return self._query(col, count, vector, k, filters)


def persistent(settings: Settings) -> PassageStore:
    settings.chroma_path.mkdir(parents=True, exist_ok=True)
    return EmbeddedChromaStore(settings.chroma_path, settings.version_check_s)


def http(settings: Settings) -> PassageStore:
    import chromadb

    try:
        client = chromadb.HttpClient(
            host=settings.chroma_host, port=settings.chroma_port, settings=_chroma_settings()
        )
    except Exception as exc:
        raise BackendUnavailable(
            f"Cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} "
            f"({exc}). Start it with `chroma run --path DIR --port {settings.chroma_port}`."
        ) from exc
    return ChromaStore(client)
