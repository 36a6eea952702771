"""An in-memory store: the same contract as Chroma, for tests, demos and short-lived runs.

Nothing is persisted; the index lives as long as the process. Every method holds one
lock, so readers see either the state before a write or after it, never half of one.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dossier.errors import CollectionNotFound, DocumentNotFound
from dossier.index.filters import FilterColumns, PassageFilter, active
from dossier.index.store import (
    PassageStore,
    StoredDocument,
    check_embedder,
    validate_collection_name,
)
from dossier.models import CollectionInfo, DocumentInfo, Passage


@dataclass
class _Collection:
    embedder: str
    version: int = 0
    docs: dict[str, StoredDocument] = field(default_factory=dict)
    passages: dict[str, Passage] = field(default_factory=dict)
    vectors: dict[str, np.ndarray] = field(default_factory=dict)


def _unit(vector: np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    norm = float(np.linalg.norm(v))
    return v / norm if norm else v


class MemoryStore(PassageStore):
    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._cols: dict[str, _Collection] = {}

    def _get(self, name: str) -> _Collection:
        col = self._cols.get(name)
        if col is None:
            raise CollectionNotFound(name, sorted(self._cols))
        return col

    def list_collections(self) -> list[CollectionInfo]:
        with self._lock:
            return [
                CollectionInfo(
                    name=name, documents=len(c.docs), chunks=len(c.passages), embedder=c.embedder
                )
                for name, c in sorted(self._cols.items())
            ]

    def open_collection(self, name: str, embedder_id: str, *, create: bool = False) -> None:
        with self._lock:
            if create and name not in self._cols:
                validate_collection_name(name)
                self._cols[name] = _Collection(embedder=embedder_id)
            check_embedder(name, self._get(name).embedder, embedder_id)

    def drop_collection(self, name: str) -> None:
        with self._lock:
            self._cols.pop(name, None)

    def version(self, name: str) -> int:
        with self._lock:
            return self._get(name).version

    def version_tag(self, name: str) -> tuple[str, int]:
        # A dropped and re-created collection is a new object: its identity differs.
        with self._lock:
            col = self._get(name)
            return f"{name}@{id(col)}", col.version

    def bump_version(self, name: str) -> int:
        with self._lock:
            col = self._get(name)
            col.version += 1
            return col.version

    def documents(self, name: str) -> dict[str, DocumentInfo]:
        with self._lock:
            return {doc_id: d.info for doc_id, d in self._get(name).docs.items()}

    def get_document(self, name: str, doc_id: str) -> StoredDocument:
        with self._lock:
            doc = self._get(name).docs.get(doc_id)
            if doc is None:
                raise DocumentNotFound(doc_id, name)
            return doc

    def put_documents(
        self, name: str, docs: Sequence[StoredDocument], centroids: np.ndarray
    ) -> None:
        with self._lock:
            col = self._get(name)
            for doc in docs:
                col.docs[doc.info.doc_id] = doc

    def delete_documents(self, name: str, doc_ids: Sequence[str]) -> None:
        with self._lock:
            col = self._get(name)
            gone = set(doc_ids)
            for doc_id in gone:
                col.docs.pop(doc_id, None)
            for pid in [pid for pid, p in col.passages.items() if p.doc_id in gone]:
                del col.passages[pid]
                col.vectors.pop(pid, None)

    def passage_refs(self, name: str) -> dict[str, str]:
        with self._lock:
            return {pid: p.doc_id for pid, p in self._get(name).passages.items()}

    def passage_vectors(self, name: str, passage_ids: Sequence[str]) -> dict[str, np.ndarray]:
        with self._lock:
            vectors = self._get(name).vectors
            return {pid: vectors[pid].copy() for pid in passage_ids if pid in vectors}

    def put_passages(self, name: str, passages: Sequence[Passage], vectors: np.ndarray) -> None:
        with self._lock:
            col = self._get(name)
            for p, v in zip(passages, vectors, strict=True):
                col.passages[p.passage_id] = p
                col.vectors[p.passage_id] = np.asarray(v, dtype=np.float32).copy()

    def delete_passages(self, name: str, passage_ids: Sequence[str]) -> None:
        with self._lock:
            col = self._get(name)
            for pid in passage_ids:
                col.passages.pop(pid, None)
                col.vectors.pop(pid, None)

    def all_passages(self, name: str) -> list[Passage]:
        with self._lock:
            return list(self._get(name).passages.values())

    def query(
        self, name: str, vector: np.ndarray, k: int, filters: PassageFilter | None = None
    ) -> list[tuple[Passage, float]]:
        wanted = active(filters)
        with self._lock:
            col = self._get(name)
            ids = list(col.passages)
            if wanted is not None:
                keep = wanted.mask(FilterColumns.of_passages(col.passages.values()))
                ids = [pid for pid, kept in zip(ids, keep, strict=True) if kept]
            if not ids or k <= 0:
                return []
            matrix = np.stack([_unit(col.vectors[pid]) for pid in ids])
            sims = matrix @ _unit(vector)
            order = np.argsort(-sims, kind="stable")[:k]
            return [(col.passages[ids[i]], float(sims[i])) for i in order]
