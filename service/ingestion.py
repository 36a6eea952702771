"""Ingestion over HTTP: collections, document upserts (JSON or files), deletes, and jobs.

It runs the same :class:`ingest.pipeline.Ingestor` as ``dossier ingest``: the same
loaders and binary checks, the same cleaning, chunking and content hashes, so a document
posted twice (or posted after the CLI indexed it) is unchanged and nothing is embedded.
Writes are serialised by one lock per app; queries keep being answered meanwhile.
Batches larger than ``DOSSIER_INGEST_SYNC_MAX_DOCUMENTS`` run as background jobs.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, File, Path, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import AnyHttpUrl, BaseModel, ConfigDict, Field

from dossier.engine import Dossier
from dossier.errors import (
    CollectionExists,
    DossierError,
    FileTooLarge,
    InvalidInput,
    NotFound,
    NotIndexed,
)
from dossier.index.embeddings import embedder_id
from dossier.index.store import COLLECTION_NAME
from dossier.models import Document
from dossier.settings import Settings
from dossier.text import digest
from ingest.fetch import url_documents
from ingest.loaders import RawArticle, check_text, parse
from ingest.pipeline import Ingestor, IngestReport
from service.auth import PrincipalDep, scoped
from service.errors import errors_doc
from service.schemas import CollectionPublic

log = logging.getLogger(__name__)

NAME_PATTERN = COLLECTION_NAME.pattern
CollectionName = Annotated[
    str,
    Path(
        min_length=3,
        max_length=56,
        pattern=NAME_PATTERN,
        description="3-56 lowercase letters, digits, '.', '_' or '-'.",
    ),
]
DocId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


# -- bodies -------------------------------------------------------------------
class DocumentIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "id": "wire/2024-05-01-harbour",
                    "title": "Harbour reopens after storm",
                    "text": "The harbour reopened on Monday. Ferries resumed at noon.",
                    "publisher": "Test Wire",
                    "published": "2024-05-01",
                    "tags": ["weather"],
                }
            ]
        },
    )

    id: str | None = Field(
        default=None,
        min_length=1,
        max_length=300,
        pattern=r"^[^\x00-\x1f/][^\x00-\x1f]*$",
        description="Your stable id for the article (a path or a key); re-posting it updates "
        "the document. Default: derived from title and text.",
    )
    title: str = Field(min_length=1, max_length=1000)
    text: str = Field(min_length=1, max_length=5_000_000, description="The article body.")
    url: str | None = Field(default=None, max_length=2000)
    published: str | None = Field(default=None, max_length=40, description="e.g. 2024-05-01")
    publisher: str | None = Field(default=None, max_length=300)
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    documents: list[DocumentIn] = Field(min_length=1, max_length=2000)


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"name": "wire"}]})
    name: str = Field(min_length=3, max_length=56, pattern=NAME_PATTERN)


MAX_URLS = 500


class UrlsCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"urls": ["https://example.com/news/harbour.html"]}]},
    )
    urls: list[AnyHttpUrl] = Field(
        min_length=1,
        max_length=MAX_URLS,
        description="http(s) pages (HTML, plain text, Markdown, PDF, .docx); each page's URL "
        "is its document's id, so posting it again updates it.",
    )


class ProblemPublic(BaseModel):
    source: str = Field(description="The id or file name.")
    reason: str


class DocumentRef(BaseModel):
    source: str
    doc_id: str


class IngestResultPublic(BaseModel):
    collection: str
    added: int
    updated: int
    unchanged: int
    duplicates: list[ProblemPublic] = Field(description="Same text as another; stored once.")
    failed: list[ProblemPublic]
    skipped: list[ProblemPublic]
    chunks_embedded: int
    chunks_total: int
    seconds: float
    documents: list[DocumentRef] = Field(description="Every accepted document and its doc_id.")


class JobPublic(BaseModel):
    id: str
    collection: str
    status: Literal["queued", "running", "done", "failed"]
    total: int = Field(description="Documents in the batch.")
    processed: int
    eta_s: float | None = Field(description="Estimated seconds left, once some are done.")
    created: str
    finished: str | None
    error: str | None
    result: IngestResultPublic | None


# -- jobs ---------------------------------------------------------------------
def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    id: str
    collection: str
    total: int
    status: Literal["queued", "running", "done", "failed"] = "queued"
    processed: int = 0
    created: str = field(default_factory=_now)
    started_at: float | None = None
    finished: str | None = None
    error: str | None = None
    result: IngestResultPublic | None = None

    def advance(self, n: int) -> None:
        self.processed = min(self.total, self.processed + n)

    def public(self) -> JobPublic:
        eta = None
        if self.status == "running" and self.started_at and 0 < self.processed < self.total:
            elapsed = time.monotonic() - self.started_at
            eta = round(elapsed / self.processed * (self.total - self.processed), 1)
        elif self.status == "done":
            eta = 0.0
        return JobPublic(
            id=self.id,
            collection=self.collection,
            status=self.status,
            total=self.total,
            processed=self.processed,
            eta_s=eta,
            created=self.created,
            finished=self.finished,
            error=self.error,
            result=self.result,
        )


class Ingestion:
    """The app's one writer: a lock for synchronous upserts, one worker thread for jobs.

    Jobs live in memory: a restart loses their status, not their work (every committed
    group is in the store, and re-posting the batch skips what is already there).
    """

    MAX_JOBS_KEPT = 1000

    def __init__(self, settings: Settings, engine: Dossier) -> None:
        self.settings = settings
        self.engine = engine
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-job")
        self.jobs: dict[str, Job] = {}

    def ingestor(self) -> Ingestor:
        return Ingestor(self.settings, self.engine.store, self.engine.embedder)

    def run(
        self,
        collection: str,
        docs: Sequence[Document],
        report: IngestReport,
        progress: Callable[[int], None] | None = None,
    ) -> IngestResultPublic:
        with self.lock:
            done = self.ingestor().upsert(collection, docs, report, progress)
        return _result(done, docs)

    def submit(self, collection: str, docs: Sequence[Document], report: IngestReport) -> Job:
        return self.submit_work(collection, len(docs), lambda: docs, report)

    def submit_work(
        self,
        collection: str,
        total: int,
        prepare: Callable[[], Sequence[Document]],
        report: IngestReport,
    ) -> Job:
        """A job that first makes its documents (e.g. fetches URLs), outside the lock."""
        job = Job(id=uuid.uuid4().hex, collection=collection, total=total)
        self.jobs[job.id] = job
        if len(self.jobs) > self.MAX_JOBS_KEPT:  # forget the oldest finished ones
            for old in [j for j in self.jobs.values() if j.finished][: len(self.jobs) // 10]:
                self.jobs.pop(old.id, None)

        def work() -> None:
            job.status = "running"
            job.started_at = time.monotonic()
            try:
                docs = prepare()
                job.result = self.run(collection, docs, report, job.advance)
                job.status = "done"
                job.processed = job.total
            except DossierError as exc:
                job.status, job.error = "failed", str(exc)
            except Exception as exc:  # a job must always end with a status, never hang
                log.exception("ingest job %s failed", job.id)
                job.status, job.error = "failed", f"internal error: {type(exc).__name__}"
            finally:
                job.finished = _now()

        self.pool.submit(work)
        return job

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def _result(report: IngestReport, docs: Sequence[Document]) -> IngestResultPublic:
    failed = {src for src, _ in report.failed}
    return IngestResultPublic(
        collection=report.collection,
        added=report.added,
        updated=report.updated,
        unchanged=report.unchanged,
        duplicates=[
            ProblemPublic(source=d, reason=f"same text as {c}") for d, c in report.duplicates
        ],
        failed=[ProblemPublic(source=s, reason=r) for s, r in report.failed],
        skipped=[ProblemPublic(source=s, reason=r) for s, r in report.skipped],
        chunks_embedded=report.chunks_embedded,
        chunks_total=report.chunks_total,
        seconds=round(report.seconds, 3),
        documents=[
            DocumentRef(source=d.source_path, doc_id=d.doc_id)
            for d in docs
            if d.source_path not in failed
        ],
    )


def _ingestion(request: Request) -> Ingestion:
    ing: Ingestion = request.app.state.ingestion
    return ing


def _respond(
    request: Request, collection: str, docs: list[Document], report: IngestReport
) -> IngestResultPublic | JSONResponse:
    ing = _ingestion(request)
    if len(docs) <= ing.settings.ingest_sync_max_documents:
        return ing.run(collection, docs, report)
    return _accepted(ing.submit(collection, docs, report))


def _accepted(job: Job) -> JSONResponse:
    return JSONResponse(
        status_code=202,
        content=job.public().model_dump(mode="json"),
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


def _folder_tags(source: str) -> list[str]:
    # Like the CLI: a file in a sub-folder is tagged with the folder (the BBC's categories).
    parts = PurePosixPath(source).parts
    return [parts[0]] if len(parts) > 1 else []


def _safe_name(filename: str | None, index: int) -> str:
    name = (filename or "").replace("\\", "/").strip()
    parts = [p for p in PurePosixPath(name).parts if p not in ("", "/", ".")]
    if not parts or ".." in parts:
        raise InvalidInput(
            f"file #{index + 1}: a file name like 'article.md' or 'folder/article.txt' is "
            f"needed (got {filename!r})."
        )
    return "/".join(parts)


# -- routes -------------------------------------------------------------------
router = APIRouter(prefix="/v1", tags=["ingestion"])
UPSERT_DOC = (
    "200 with the result for up to DOSSIER_INGEST_SYNC_MAX_DOCUMENTS documents (default "
    "20); larger batches answer 202 with a job to poll at GET /v1/jobs/{id} (Location "
    "header). Unchanged documents are not embedded again."
)


COLLECTION_LINKS = {
    "links": {
        "UpsertIntoIt": {
            "operationId": "upsert_documents",
            "parameters": {"name": "$response.body#/name"},
        },
        "DeleteIt": {
            "operationId": "delete_collection",
            "parameters": {"name": "$response.body#/name"},
        },
    }
}
UPSERT_LINKS = {
    "links": {
        "GetDocument": {
            "operationId": "get_document",
            "parameters": {
                "doc_id": "$response.body#/documents/0/doc_id",
                "collection": "$request.path.name",
            },
        },
        "DeleteDocument": {
            "operationId": "delete_document",
            "parameters": {
                "name": "$request.path.name",
                "doc_id": "$response.body#/documents/0/doc_id",
            },
        },
    }
}
JOB_LINKS = {
    "links": {"GetJob": {"operationId": "get_job", "parameters": {"job_id": "$response.body#/id"}}}
}


# What the upsert routes (documents, files, URLs) answer: a result, or a job for a large batch.
UPSERT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: UPSERT_LINKS,
    202: {"model": JobPublic, "description": "Queued as a job.", **JOB_LINKS},
    **errors_doc(403, 404, 409),
}


@router.post(
    "/collections",
    status_code=201,
    operation_id="create_collection",
    summary="Create an empty collection (write keys, within their scope)",
    responses={201: COLLECTION_LINKS, **errors_doc(403, 404, 409)},
)
def create_collection(
    body: CollectionCreate, request: Request, principal: PrincipalDep
) -> CollectionPublic:
    principal.check(body.name, "write")
    engine: Dossier = request.app.state.dossier
    ing = _ingestion(request)
    with ing.lock:
        if body.name in {c.name for c in engine.collections()}:
            raise CollectionExists(body.name)
        eid = embedder_id(engine.embedder)
        engine.store.open_collection(body.name, eid, create=True)
    return CollectionPublic(name=body.name, documents=0, chunks=0, embedder=eid)


@router.delete(
    "/collections/{name}",
    status_code=204,
    operation_id="delete_collection",
    summary="Delete a collection with all its documents (write keys, within their scope)",
    responses=errors_doc(403, 404, 409),
)
def delete_collection(name: CollectionName, request: Request, principal: PrincipalDep) -> Response:
    engine: Dossier = request.app.state.dossier
    scoped(principal, engine, name, "write")
    with _ingestion(request).lock:
        engine.store.drop_collection(name)
        engine.forget(name)
    return Response(status_code=204)


@router.post(
    "/collections/{name}/documents",
    summary="Add or update documents given as JSON (created with the collection if needed)",
    response_model=IngestResultPublic,
    operation_id="upsert_documents",
    description=UPSERT_DOC,
    responses=UPSERT_RESPONSES,
)
def upsert_documents(
    name: CollectionName, body: UpsertRequest, request: Request, principal: PrincipalDep
) -> IngestResultPublic | JSONResponse:
    principal.check(name, "write")
    ing = _ingestion(request)
    ingestor = ing.ingestor()
    report = IngestReport(collection=name)
    docs: list[Document] = []
    for item in body.documents:
        source = item.id or f"doc-{digest(item.title, item.text)}"
        raw = RawArticle(
            path=pathlib.Path(source),
            text=item.text,
            title=item.title,
            meta={
                "publisher": item.publisher,
                "url": item.url,
                "published": item.published,
                "tags": list(item.tags),
            },
        )
        try:
            check_text(item.text, source)
            docs.append(ingestor.document(name, source, raw))
        except DossierError as exc:
            report.failed.append((source, str(exc)))
    return _respond(request, name, docs, report)


@router.post(
    "/collections/{name}/files",
    summary="Add or update documents uploaded as files (.md, .txt, .html, .pdf, .docx)",
    response_model=IngestResultPublic,
    operation_id="upsert_files",
    description=UPSERT_DOC + " Each file goes through the same checks as `dossier ingest`: "
    "size limit, binary detection, front matter; a bad file is reported, the rest go on.",
    responses={
        202: {"model": JobPublic, "description": "Queued as a job."},
        **errors_doc(403, 404, 409),
    },
)
async def upsert_files(
    name: CollectionName,
    request: Request,
    principal: PrincipalDep,
    files: Annotated[list[UploadFile], File(description="Article files; none is a no-op.")] = [],  # noqa: B006 - FastAPI copies defaults per request
) -> IngestResultPublic | JSONResponse:
    principal.check(name, "write")
    ing = _ingestion(request)
    ingestor = ing.ingestor()
    limit = ing.settings.ingest_max_file_bytes
    uploads: list[tuple[str, bytes, int | None]] = []
    for index, upload in enumerate(files):
        uploads.append(
            (_safe_name(upload.filename, index), await upload.read(limit + 1), upload.size)
        )

    def read_and_respond() -> IngestResultPublic | JSONResponse:
        # Off the event loop: reading a long PDF takes CPU time that other requests need.
        report = IngestReport(collection=name)
        docs: list[Document] = []
        for source, data, size in uploads:
            try:
                if len(data) > limit:
                    raise FileTooLarge(source, size or len(data), limit)
                raw = parse(source, data, max_bytes=limit)
                docs.append(ingestor.document(name, source, raw, _folder_tags(source)))
            except NotIndexed as exc:
                report.skipped.append((source, str(exc)))
            except DossierError as exc:
                report.failed.append((source, str(exc)))
        return _respond(request, name, docs, report)

    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(read_and_respond)


@router.post(
    "/collections/{name}/urls",
    summary="Add or update documents fetched from URLs (created with the collection if needed)",
    response_model=IngestResultPublic,
    operation_id="upsert_urls",
    description=UPSERT_DOC.replace("documents (default", "URLs (default")
    + " Each page is fetched by the server with DOSSIER_INGEST_MAX_FILE_MB, "
    "DOSSIER_FETCH_TIMEOUT_S and DOSSIER_FETCH_MAX_REDIRECTS, and only from public addresses "
    "(or those DOSSIER_FETCH_ALLOW names); a URL that fails is reported in `failed` with its "
    "reason, the rest go on.",
    responses=UPSERT_RESPONSES,
)
def upsert_urls(
    name: CollectionName, body: UrlsCreate, request: Request, principal: PrincipalDep
) -> IngestResultPublic | JSONResponse:
    principal.check(name, "write")
    ing = _ingestion(request)
    urls = [str(u) for u in body.urls]
    report = IngestReport(collection=name)

    def prepare() -> list[Document]:
        # Fetching is network time: it runs before, not inside, the write lock.
        return url_documents(ing.settings, ing.ingestor(), name, urls, report)

    if len(urls) <= ing.settings.ingest_sync_max_documents:
        return _respond(request, name, prepare(), report)
    return _accepted(ing.submit_work(name, len(urls), prepare, report))


@router.delete(
    "/collections/{name}/documents/{doc_id}",
    status_code=204,
    operation_id="delete_document",
    summary="Delete one document and its passages",
    responses=errors_doc(403, 404, 409),
)
def delete_document(
    name: CollectionName, doc_id: DocId, request: Request, principal: PrincipalDep
) -> Response:
    engine: Dossier = request.app.state.dossier
    scoped(principal, engine, name, "write")
    with _ingestion(request).lock:
        engine.store.get_document(name, doc_id)  # 404 when it is not there
        engine.store.delete_documents(name, [doc_id])
        engine.store.bump_version(name)
    return Response(status_code=204)


@router.get(
    "/jobs/{job_id}",
    operation_id="get_job",
    summary="Progress of a background ingestion job: counts, ETA, and the result when done",
    responses=errors_doc(404),
)
def get_job(
    job_id: Annotated[str, Path(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")],
    request: Request,
    principal: PrincipalDep,
) -> JobPublic:
    job = _ingestion(request).jobs.get(job_id)
    if job is None or not principal.covers(job.collection):
        raise NotFound(f"No job {job_id!r}; jobs are kept in memory until the server restarts.")
    return job.public()


def install(app: FastAPI, settings: Settings, engine: Dossier) -> Ingestion:
    ing = Ingestion(settings, engine)
    app.state.ingestion = ing
    app.include_router(router)
    return ing
