"""Where passages and documents live: the interface every backend implements.

Backends live in ``dossier.index.stores`` (Chroma, in-memory), whose registry imports
one only when ``DOSSIER_STORE`` chooses it. Each passes the one contract suite in
``tests/test_store_contract.py``. A document record is written after its passages,
so it doubles as the commit marker that makes ingestion crash-safe and idempotent.
"""

from __future__ import annotations

import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from dossier.errors import (
    EmbedderMismatch,
    InvalidInput,
)
from dossier.index.filters import PassageFilter
from dossier.models import CollectionInfo, DocumentInfo, Passage

log = logging.getLogger(__name__)

DOCS_SUFFIX = "__docs"
# Letters and digits, single separators between them: no "..", no "__" (so never the
# "__docs" suffix), 3-56 characters. The HTTP schema publishes this same pattern, so a
# name it accepts is never refused here; it needs no look-around for that reason.
COLLECTION_NAME = re.compile(r"^[a-z0-9](?:[._-]?[a-z0-9])+$")
COLLECTION_NAME_LENGTH = (3, 56)
EMBEDDER_KEY = "dossier:embedder"
VERSION_KEY = "dossier:version"


def validate_collection_name(name: str) -> str:
    lo, hi = COLLECTION_NAME_LENGTH
    if not (lo <= len(name) <= hi and COLLECTION_NAME.match(name)):
        raise InvalidInput(
            f"Invalid collection name {name!r}: use 3-56 lowercase letters and digits, with "
            "single '.', '_' or '-' between them (e.g. news-bbc)."
        )
    return name


def check_embedder(name: str, recorded: object, embedder_id: str) -> None:
    """Every backend refuses to query a collection with another embedder's vectors."""
    if recorded != embedder_id:
        raise EmbedderMismatch(
            f"Collection {name!r} was built with embedder {recorded!r} but Dossier is "
            f"configured with {embedder_id!r}. Set DOSSIER_EMBEDDER back, or re-ingest "
            f"into a new collection."
        )


@dataclass(frozen=True)
class StoredDocument:
    info: DocumentInfo
    text: str


class PassageStore(ABC):
    """What Dossier needs from a vector store. One implementation per backend."""

    @abstractmethod
    def list_collections(self) -> list[CollectionInfo]: ...

    @abstractmethod
    def open_collection(self, name: str, embedder_id: str, *, create: bool = False) -> None:
        """Check the collection exists and was built with ``embedder_id``; create it if asked."""

    @abstractmethod
    def drop_collection(self, name: str) -> None: ...

    @abstractmethod
    def version(self, name: str) -> int:
        """Bumped by every change, so derived indexes (BM25) know when to rebuild."""

    @abstractmethod
    def bump_version(self, name: str) -> int: ...

    def version_tag(self, name: str) -> tuple[str, int]:
        """The collection's identity and version in one call.

        The identity changes when a collection is dropped and created again (its version
        then restarts), so indexes saved outside the store are keyed by both.
        """
        return name, self.version(name)

    @abstractmethod
    def documents(self, name: str) -> dict[str, DocumentInfo]: ...

    @abstractmethod
    def get_document(self, name: str, doc_id: str) -> StoredDocument: ...

    @abstractmethod
    def put_documents(
        self, name: str, docs: Sequence[StoredDocument], centroids: np.ndarray
    ) -> None: ...

    @abstractmethod
    def delete_documents(self, name: str, doc_ids: Sequence[str]) -> None:
        """Remove the document records and all their passages."""

    @abstractmethod
    def passage_refs(self, name: str) -> dict[str, str]:
        """Every passage id with its document id; metadata only, no text or vectors."""

    @abstractmethod
    def passage_vectors(self, name: str, passage_ids: Sequence[str]) -> dict[str, np.ndarray]: ...

    @abstractmethod
    def put_passages(self, name: str, passages: Sequence[Passage], vectors: np.ndarray) -> None: ...

    @abstractmethod
    def delete_passages(self, name: str, passage_ids: Sequence[str]) -> None: ...

    @abstractmethod
    def all_passages(self, name: str) -> list[Passage]: ...

    @abstractmethod
    def query(
        self, name: str, vector: np.ndarray, k: int, filters: PassageFilter | None = None
    ) -> list[tuple[Passage, float]]:
        """The k nearest passages with their cosine similarity, among those ``filters``
        matches: filtered in the query itself, so k come back when k passages match."""
