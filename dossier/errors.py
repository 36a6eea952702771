"""Dossier's exceptions. HTTP status codes are assigned in one place, ``service.errors``.

::

    DossierError
    ├── InvalidInput            the caller sent something unusable (400/422)
    │   └── UnsupportedDocument a file that cannot be read as an article
    ├── NotFound                (404)
    │   ├── CollectionNotFound
    │   └── DocumentNotFound
    ├── EmbedderMismatch        a collection built with another embedder (409)
    ├── ConfigurationError      settings or an install step are wrong (500, with how to fix)
    │   └── ModelNotInstalled
    └── BackendUnavailable      a store or model endpoint cannot be reached (503)
        └── LLMFailure          (dossier.chat) an OpenAI-compatible call failed after retries
"""

from __future__ import annotations


class DossierError(Exception):
    """Base class; ``str(err)`` is always a message a person can act on."""


class InvalidInput(DossierError):
    pass


class UnsupportedDocument(InvalidInput):
    pass


class NotFound(DossierError):
    pass


class CollectionNotFound(NotFound):
    def __init__(self, name: str, known: list[str] | None = None) -> None:
        hint = f" Known collections: {', '.join(sorted(known))}." if known else ""
        super().__init__(
            f"Unknown collection {name!r}.{hint} Ingest it with `dossier ingest PATH "
            f"--collection {name}`."
        )
        self.name = name


class DocumentNotFound(NotFound):
    def __init__(self, doc_id: str, collection: str) -> None:
        super().__init__(f"No document {doc_id!r} in collection {collection!r}.")
        self.doc_id = doc_id


class EmbedderMismatch(DossierError):
    pass


class ConfigurationError(DossierError):
    pass


class ModelNotInstalled(ConfigurationError):
    pass


class BackendUnavailable(DossierError):
    pass
