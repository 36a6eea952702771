"""A small typed client for the Dossier HTTP API: the only way the UI reaches the service.

The models below mirror the public JSON contract (``/docs`` of the API) rather than
importing ``service.schemas``, so the UI works against any deployment of the API and
keeps working when fields are added (unknown fields are ignored).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError

from dossier.settings import is_loopback

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Citation(_Model):
    number: int
    doc_id: str
    passage_id: str
    title: str
    publisher: str | None = None
    url: str | None = None
    published: str | None = None
    author: str | None = None
    page: int | None = None  # the cited sentence's page in a PDF
    passage_text: str
    quote: str
    start: int
    end: int


class AnswerSentence(_Model):
    text: str
    citations: list[int] = []
    supported: bool | None = None
    support: float | None = None


class Passage(_Model):
    passage_id: str
    doc_id: str
    title: str
    publisher: str | None = None
    url: str | None = None
    published: str | None = None
    author: str | None = None
    page: int | None = None
    text: str
    start: int
    end: int
    score: float
    dense_similarity: float | None = None
    lexical_score: float | None = None


class DisagreeingSource(_Model):
    value: str
    citation: int
    quote: str
    doc_id: str
    passage_id: str
    title: str
    publisher: str | None = None
    published: str | None = None
    start: int
    end: int


class Conflict(_Model):
    """An answer sentence whose figure or date another source gives otherwise."""

    sentence: int
    value: str
    citation: int | None = None
    sources: list[DisagreeingSource] = []


class Answer(_Model):
    question: str
    collection: str
    answer: str
    refused: bool
    refusal_reason: str | None = None
    answerer: str = ""
    sentences: list[AnswerSentence] = []
    citations: list[Citation] = []
    passages: list[Passage] = []
    timings: dict[str, float] = {}
    # The configured answerer (an LLM) failed and this is the extractive fallback.
    degraded: bool = False
    degraded_reason: str | None = None
    answerable_probability: float | None = None
    # In a conversation: the question as searched, with what it refers to made explicit.
    standalone_question: str | None = None
    conflicts: list[Conflict] = []


Role = Literal["system", "user", "assistant"]
# The most messages one /v1/chat request may carry (the API's schema); the API reads only
# the latest turns anyway (DOSSIER_CHAT_MAX_TURNS), so a longer history is trimmed here.
MAX_CHAT_MESSAGES = 100


class ChatMessage(_Model):
    """One turn sent to ``POST /v1/chat``; an assistant turn's content is its answer text."""

    role: Role
    content: str


@dataclass(frozen=True)
class Filters:
    """Which sources an answer may use (the API's ``filters``); None fields do not filter."""

    published_after: date | None = None
    published_before: date | None = None
    doc_ids: tuple[str, ...] = ()
    publisher: str | None = None

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.published_after is not None:
            out["published_after"] = self.published_after.isoformat()
        if self.published_before is not None:
            out["published_before"] = self.published_before.isoformat()
        if self.doc_ids:
            out["doc_ids"] = list(self.doc_ids)
        if self.publisher:
            out["publisher"] = self.publisher
        return out


@dataclass(frozen=True)
class Retrieved:
    """The first streamed event: what was searched and found, before any answer text."""

    collection: str
    standalone_question: str | None
    passages: list[Passage]


@dataclass(frozen=True)
class TextDelta:
    """A piece of the answer text as it is written (replaced by the final answer)."""

    text: str


StreamEvent = Retrieved | TextDelta | Answer


class SearchResult(_Model):
    query: str
    collection: str
    passages: list[Passage]


class Collection(_Model):
    name: str
    documents: int
    chunks: int
    embedder: str = ""


class Document(_Model):
    doc_id: str
    collection: str
    title: str
    source_path: str = ""
    publisher: str | None = None
    url: str | None = None
    published: str | None = None
    language: str | None = None
    author: str | None = None
    tags: list[str] = []
    chunks: int = 0
    duplicates: list[str] = []  # paths of identical articles stored only once


class Page(_Model):
    page: int
    start: int
    end: int


class DocumentDetail(Document):
    text: str
    pages: list[Page] = []  # a PDF's pages as spans of ``text``


class Feedback(_Model):
    id: int
    created: str
    rating: Literal["up", "down"]
    comment: str | None = None
    question: str
    collection: str | None = None
    answer: str
    answerer: str | None = None
    refused: bool = False
    citations: list[str] = []


class IngestProblem(_Model):
    """A file or id that was not stored (failed, skipped) or stored once (a duplicate)."""

    source: str
    reason: str


class DocumentRef(_Model):
    source: str
    doc_id: str


class IngestResult(_Model):
    collection: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    duplicates: list[IngestProblem] = []
    failed: list[IngestProblem] = []
    skipped: list[IngestProblem] = []
    chunks_embedded: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    documents: list[DocumentRef] = []


JobStatus = Literal["queued", "running", "done", "failed", "cancelled"]


class Job(_Model):
    """A background ingestion (``GET /v1/jobs/{id}``): large batches answer 202 with one."""

    id: str
    collection: str
    status: JobStatus
    total: int
    processed: int = 0
    chunks_embedded: int = 0
    eta_s: float | None = None
    created: str = ""
    started: str | None = None
    finished: str | None = None
    cancel_requested: bool = False
    host: str = ""
    error: str | None = None
    result: IngestResult | None = None

    @property
    def over(self) -> bool:
        return self.status in ("done", "failed", "cancelled")


class ApiError(Exception):
    """Base class; ``str(err)`` is a message for the person using the UI."""


class ApiUnreachable(ApiError):
    def __init__(self, url: str, cause: Exception) -> None:
        super().__init__(
            f"Cannot reach the Dossier API at {url} ({type(cause).__name__}). Start it with "
            "`make run` (or `dossier serve`), or point DOSSIER_API_URL at a running one."
        )
        self.url = url


class ApiTimeout(ApiError):
    def __init__(self, url: str, timeout_s: float) -> None:
        super().__init__(
            f"The API did not answer within {timeout_s:g} s. Try again, ask a narrower "
            "question, or raise DOSSIER_UI_TIMEOUT_S."
        )
        self.url = url
        self.timeout_s = timeout_s


class ApiResponseError(ApiError):
    """The API answered with an error body: ``{"error": {"type", "message"}}``."""

    def __init__(self, status: int, kind: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind


class UrlsUnsupported(ApiResponseError):
    """The API has no ``POST /v1/collections/{name}/urls`` (an older server)."""

    def __init__(self, status: int) -> None:
        super().__init__(status, "urls_unsupported", "This server does not fetch URLs.")


# What the upload form offers; the server decides what it can read (PDF and Word readers
# may be missing on an older server, which then reports those files as failed).
UPLOAD_TYPES = ("md", "txt", "html", "htm", "pdf", "docx")
MIME_TYPES = {
    "md": "text/markdown",
    "txt": "text/plain",
    "html": "text/html",
    "htm": "text/html",
    "pdf": "application/pdf",
    "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


class DossierClient:
    """Synchronous client; one instance holds one connection pool. Use as a context manager."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float = 20.0,
        *,
        transport: httpx.BaseTransport | None = None,
        api_key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        # Connecting should be quick on any sane network; a long connect timeout would only
        # delay the "API unreachable" message.
        timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, 3.0))
        self.has_key = bool(api_key)
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DossierClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- transport -------------------------------------------------------------
    @contextmanager
    def _transport(self) -> Iterator[None]:
        """httpx's failures as the UI's: a refused connection vs an API too slow to answer."""
        try:
            yield
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.ConnectTimeout):
                raise ApiUnreachable(self.base_url, exc) from exc
            raise ApiTimeout(self.base_url, self.timeout_s) from exc
        except httpx.TransportError as exc:
            raise ApiUnreachable(self.base_url, exc) from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        with self._transport():
            resp = self._http.request(method, path, **kwargs)
        if resp.status_code >= 400:
            raise _error_from(resp)
        return resp

    def _request(self, method: str, path: str, model: type[T] | Any, **kwargs: Any) -> T:
        parsed: T = self._parsed(self._send(method, path, **kwargs), method, path, model)
        return parsed

    def _parsed(self, resp: httpx.Response, method: str, path: str, model: type[T] | Any) -> T:
        try:
            parsed: T = TypeAdapter(model).validate_python(resp.json())
        except (ValueError, ValidationError) as exc:
            log.warning("unexpected response from %s %s: %s", method, path, exc)
            raise ApiError(
                f"The API at {self.base_url} sent a response this UI does not understand "
                f"({method} {path}). Is DOSSIER_API_URL pointing at a Dossier API?"
            ) from exc
        return parsed

    # -- endpoints -------------------------------------------------------------
    def health(self) -> dict[str, str]:
        return self._request("GET", "/healthz", dict[str, str])

    def collections(self) -> list[Collection]:
        return self._request("GET", "/v1/collections", list[Collection])

    def ask(self, question: str, collection: str | None = None, top_k: int | None = None) -> Answer:
        body: dict[str, Any] = {"question": question, "collection": collection}
        if top_k is not None:
            body["top_k"] = top_k
        return self._request("POST", "/v1/ask", Answer, json=body)

    def chat(
        self,
        messages: Sequence[ChatMessage],
        collection: str | None = None,
        top_k: int | None = None,
        filters: Filters | None = None,
    ) -> Answer:
        """Answer the last message of a conversation; the API keeps no state between calls."""
        return self._request(
            "POST", "/v1/chat", Answer, json=_chat_body(messages, collection, top_k, filters)
        )

    def chat_stream(
        self,
        messages: Sequence[ChatMessage],
        collection: str | None = None,
        top_k: int | None = None,
        filters: Filters | None = None,
    ) -> Iterator[StreamEvent]:
        """``POST /v1/chat`` with ``stream: true``: a :class:`Retrieved`, then
        :class:`TextDelta` s, then the final verified :class:`Answer`, whose text replaces
        the streamed one (the server may drop unsupported sentences after streaming them)."""
        body = _chat_body(messages, collection, top_k, filters) | {"stream": True}
        retrieved: dict[str, Any] = {}
        final: dict[str, Any] | None = None
        try:
            with self._transport(), self._http.stream("POST", "/v1/chat", json=body) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error_from(resp)
                for event, data in _sse(resp.iter_lines()):
                    if event == "passages":
                        retrieved = data
                        yield Retrieved(
                            str(data.get("collection", "")),
                            data.get("standalone_question"),
                            _parse(list[Passage], data.get("passages", []), self.base_url),
                        )
                    elif event == "delta":
                        yield TextDelta(str(data.get("text", "")))
                    elif event == "citations":
                        final = data
                    elif event == "done" and final is not None:
                        merged = {
                            **final,
                            "passages": retrieved.get("passages", []),
                            "timings": data.get("timings", {}),
                        }
                        yield _parse(Answer, merged, self.base_url)
                        return
        except ValueError as exc:  # not JSON: not a Dossier API, or a proxy's page
            log.warning("unreadable answer stream from %s: %s", self.base_url, exc)
            raise ApiError(
                f"The API at {self.base_url} sent an answer stream this UI does not understand."
            ) from exc
        raise ApiError(
            f"The answer stream from {self.base_url} ended before its final answer. Try again."
        )

    def search(
        self, query: str, collection: str | None = None, k: int | None = None
    ) -> SearchResult:
        params: dict[str, Any] = {"q": query}
        if collection:
            params["collection"] = collection
        if k is not None:
            params["k"] = k
        return self._request("GET", "/v1/search", SearchResult, params=params)

    def documents(self, collection: str | None = None) -> list[Document]:
        params = {"collection": collection} if collection else {}
        return self._request("GET", "/v1/documents", list[Document], params=params)

    def document(self, doc_id: str, collection: str | None = None) -> DocumentDetail:
        params = {"collection": collection} if collection else {}
        path = f"/v1/documents/{quote(doc_id, safe='')}"
        return self._request("GET", path, DocumentDetail, params=params)

    def send_feedback(
        self,
        answer: Answer,
        rating: Literal["up", "down"],
        comment: str | None = None,
    ) -> Feedback:
        body = {
            "rating": rating,
            "comment": comment or None,
            "question": answer.question,
            "collection": answer.collection,
            "answer": answer.answer,
            "answerer": answer.answerer,
            "refused": answer.refused,
            "citations": [c.passage_id for c in answer.citations],
        }
        return self._request("POST", "/v1/feedback", Feedback, json=body)

    def feedback(self, limit: int = 100) -> list[Feedback]:
        return self._request("GET", "/v1/feedback", list[Feedback], params={"limit": limit})

    # -- writing (curators) ----------------------------------------------------
    @property
    def may_write(self) -> bool:
        """Whether to offer writes: the API is on loopback (where it needs no key by
        default, so the caller has every right) or a key is configured. The API has no
        endpoint that says what a key may do, so a read key still sees the forms; its
        writes are refused with the API's 403 message."""
        host = httpx.URL(self.base_url).host
        return self.has_key or is_loopback(host)

    def create_collection(self, name: str) -> Collection:
        return self._request("POST", "/v1/collections", Collection, json={"name": name})

    def upload_files(
        self, collection: str, files: Sequence[tuple[str, bytes]]
    ) -> IngestResult | Job:
        """``POST /v1/collections/{name}/files``: the result at once for a small batch, or
        the :class:`Job` to poll with :meth:`job` for a large one (HTTP 202)."""
        parts = [("files", (name, data, _mime(name))) for name, data in files]
        path = f"/v1/collections/{quote(collection, safe='')}/files"
        return self._ingest_response(self._send("POST", path, files=parts), path)

    def add_urls(self, collection: str, urls: Sequence[str]) -> IngestResult | Job:
        """``POST /v1/collections/{name}/urls``; :class:`UrlsUnsupported` where the server
        has no such route (404 from the router, not a collection's 404; or 405)."""
        path = f"/v1/collections/{quote(collection, safe='')}/urls"
        try:
            resp = self._send("POST", path, json={"urls": list(urls)})
        except ApiResponseError as exc:
            if exc.status == 405 or (exc.status == 404 and exc.kind == "http_error"):
                raise UrlsUnsupported(exc.status) from exc
            raise
        return self._ingest_response(resp, path)

    def job(self, job_id: str) -> Job:
        return self._request("GET", f"/v1/jobs/{quote(job_id, safe='')}", Job)

    def wait_job(
        self,
        job: Job,
        on_progress: Callable[[Job], None] | None = None,
        interval_s: float = 0.5,
        timeout_s: float = 3600.0,
    ) -> Job:
        """Poll a job until it is done or failed, calling ``on_progress`` with each state."""
        deadline = time.monotonic() + timeout_s
        while True:
            if on_progress is not None:
                on_progress(job)
            if job.over:
                return job
            if time.monotonic() > deadline:
                raise ApiError(
                    f"Job {job.id} is still {job.status} after {timeout_s:g} s; it goes on "
                    "in the server. Reload the page later to see the documents."
                )
            time.sleep(interval_s)
            job = self.job(job.id)

    def delete_document(self, collection: str, doc_id: str) -> None:
        path = f"/v1/collections/{quote(collection, safe='')}/documents/{quote(doc_id, safe='')}"
        self._send("DELETE", path)

    def _ingest_response(self, resp: httpx.Response, path: str) -> IngestResult | Job:
        if resp.status_code == 202:
            return self._parsed(resp, "POST", path, Job)
        return self._parsed(resp, "POST", path, IngestResult)


def _mime(name: str) -> str:
    return MIME_TYPES.get(name.rsplit(".", 1)[-1].lower(), "application/octet-stream")


def _chat_body(
    messages: Sequence[ChatMessage],
    collection: str | None,
    top_k: int | None,
    filters: Filters | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"messages": [m.model_dump() for m in messages]}
    if collection:
        body["collection"] = collection
    if top_k is not None:
        body["top_k"] = top_k
    if filters is not None and (wanted := filters.body()):
        body["filters"] = wanted
    return body


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Server-sent events as (event, JSON object); an event ends at a blank line."""
    event, data = "message", []
    for line in lines:
        if line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            payload = json.loads("\n".join(data))
            if not isinstance(payload, dict):
                raise ValueError(f"event {event!r} carries no JSON object")
            yield event, payload
            event, data = "message", []


def _parse(model: type[T] | Any, data: Any, base_url: str) -> Any:
    try:
        return TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        log.warning("unexpected stream event from %s: %s", base_url, exc)
        raise ApiError(
            f"The API at {base_url} sent an answer stream this UI does not understand. "
            "Is DOSSIER_API_URL pointing at a Dossier API?"
        ) from exc


def _error_from(resp: httpx.Response) -> ApiResponseError:
    try:
        err = resp.json()["error"]
        return ApiResponseError(resp.status_code, str(err["type"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        # Not a Dossier error body: a proxy page, or another service on that port.
        text = resp.text.strip().splitlines()[0][:200] if resp.text.strip() else resp.reason_phrase
        return ApiResponseError(resp.status_code, "http_error", f"HTTP {resp.status_code}: {text}")
