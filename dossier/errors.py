"""Dossier's exceptions. HTTP status codes are assigned in one place, ``service.errors``.

::

    DossierError
    ├── InvalidInput            the caller sent something unusable (400/422)
    │   ├── UnsupportedDocument a file that cannot be read as an article
    │   │   └── NotIndexed      a file passed over on purpose: reported as skipped
    │   │       ├── FileTooLarge over the per-file size limit (413 over HTTP)
    │   │       └── NoTextLayer  a PDF with no text to read (a scan; OCR is not done)
    │   └── FetchFailed         a URL could not be fetched as an article (400)
    │       └── AddressNotAllowed its host resolves to a private/loopback/... address (400)
    ├── NotFound                (404)
    │   ├── CollectionNotFound
    │   ├── DocumentNotFound
    │   ├── ConversationNotFound unknown, deleted, or another key's conversation
    │   └── JobNotFound         an unknown ingestion job, or one outside the key's scope
    ├── EmbedderMismatch        a collection built with another embedder (409)
    ├── CollectionExists        creating a collection that is already there (409)
    ├── ConversationFull        a stored conversation at its message limit (409)
    ├── JobFinished             cancelling an ingestion job that already ended (409)
    ├── NotAuthenticated        no, unknown or revoked API key (401)
    ├── PermissionDenied        the key's role does not allow this (403)
    ├── RateLimited             over the caller's request rate (429, with Retry-After)
    ├── PayloadTooLarge         a request body over the limit (413)
    ├── ConfigurationError      settings or an install step are wrong (500, with how to fix)
    │   └── ModelNotInstalled
    └── BackendUnavailable      a store or model endpoint cannot be reached (503)
        ├── LLMFailure          (dossier.llm)  an OpenAI-compatible call failed after retries
        └── AnswerTimeout       answering took longer than the limit (504)
"""

from __future__ import annotations


class DossierError(Exception):
    """Base class; ``str(err)`` is always a message a person can act on."""


class InvalidInput(DossierError):
    pass


class UnsupportedDocument(InvalidInput):
    pass


class NotIndexed(UnsupportedDocument):
    """A file that is passed over on purpose; a job lists it as skipped, not failed."""


class NoTextLayer(NotIndexed):
    pass


class FileTooLarge(NotIndexed):
    def __init__(self, name: object, size: int, limit: int) -> None:
        super().__init__(
            f"{name}: {size / 1e6:.1f} MB is over the {limit / 1e6:.1f} MB per-file limit "
            "(DOSSIER_INGEST_MAX_FILE_MB); skipped."
        )
        self.size = size
        self.limit = limit


class FetchFailed(InvalidInput):
    """A URL could not be fetched: bad scheme, too slow, too many redirects, wrong type."""


class AddressNotAllowed(FetchFailed):
    """The URL's host is (or resolves to) an address the fetcher must not reach (SSRF)."""

    def __init__(self, message: str, host: str, address: str | None = None) -> None:
        super().__init__(message)
        self.host = host
        self.address = address


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


class ConversationNotFound(NotFound):
    def __init__(self, conversation_id: str) -> None:
        # The same words for a conversation that never existed and another key's, so an
        # id reveals nothing (see dossier.chat.conversations).
        super().__init__(
            f"No conversation {conversation_id!r}; GET /v1/conversations lists yours, "
            "POST /v1/conversations starts one."
        )
        self.conversation_id = conversation_id


class JobNotFound(NotFound):
    def __init__(self, job_id: str) -> None:
        # The same words for an unknown job and another key's, as for conversations.
        super().__init__(
            f"No ingestion job {job_id!r}; a large upsert answers 202 with its id "
            "(finished jobs are kept for a while, then forgotten)."
        )
        self.job_id = job_id


class EmbedderMismatch(DossierError):
    pass


class CollectionExists(DossierError):
    def __init__(self, name: str) -> None:
        super().__init__(f"Collection {name!r} already exists; upsert documents into it.")
        self.name = name


class ConversationFull(DossierError):
    def __init__(self, conversation_id: str, limit: int) -> None:
        super().__init__(
            f"Conversation {conversation_id!r} holds {limit} messages, the limit "
            "(DOSSIER_CONVERSATION_MAX_MESSAGES); start a new one with POST /v1/conversations."
        )
        self.conversation_id = conversation_id
        self.limit = limit


class JobFinished(DossierError):
    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(
            f"Ingestion job {job_id!r} has already ended ({status}); there is nothing to "
            "cancel. What it committed stays; delete documents to remove them."
        )
        self.job_id = job_id
        self.status = status


class NotAuthenticated(DossierError):
    pass


class PermissionDenied(DossierError):
    pass


class RateLimited(DossierError):
    def __init__(self, retry_after_s: float) -> None:
        self.retry_after_s = max(1, int(retry_after_s + 0.999))
        super().__init__(
            f"Too many requests; retry after {self.retry_after_s} s (see the Retry-After header)."
        )


class PayloadTooLarge(DossierError):
    pass


class ConfigurationError(DossierError):
    pass


class ModelNotInstalled(ConfigurationError):
    pass


class BackendUnavailable(DossierError):
    pass


class AnswerTimeout(BackendUnavailable):
    pass
