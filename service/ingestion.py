"""Ingestion over HTTP: collections, document upserts (JSON or files), deletes, and jobs.

It runs the same :class:`ingest.pipeline.Ingestor` as ``dossier ingest``: the same
loaders and binary checks, the same cleaning, chunking and content hashes, so a document
posted twice (or posted after the CLI indexed it) is unchanged and nothing is embedded.
Writes are serialised by one lock per app; queries keep being answered meanwhile.
Batches larger than ``DOSSIER_INGEST_SYNC_MAX_DOCUMENTS`` run as background jobs, kept in
the state database (``service.jobs``): any host sharing it reports and cancels them.
"""

from __future__ import annotations

import logging
import pathlib
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
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
    JobNotFound,
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
from service.auth import Principal, PrincipalDep, scoped
from service.errors import errors_doc
from service.jobs import JOBS_FILE, SHUT_DOWN, HostId, JobRecord, JobStore, Status
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
    status: Literal["queued", "running", "done", "failed", "cancelled"] = Field(
        description="failed: `error` says why (a host that stopped says so, and re-posting "
        "the batch finishes it); cancelled: stopped by DELETE /v1/jobs/{id}, with what was "
        "committed before in `result`."
    )
    total: int = Field(description="Documents in the batch.")
    processed: int = Field(description="Documents done so far (unchanged ones included).")
    chunks_embedded: int = Field(description="Passages embedded so far.")
    eta_s: float | None = Field(description="Estimated seconds left, once some are done.")
    created: str
    started: str | None
    finished: str | None
    error: str | None
    cancel_requested: bool = Field(description="A cancel was asked for; it stops soon.")
    host: str = Field(description="The API process running it (hostname:pid:boot).")
    result: IngestResultPublic | None

    @classmethod
    def from_record(cls, job: JobRecord) -> JobPublic:
        return cls(
            id=job.id,
            collection=job.collection,
            status=job.status,
            total=job.total,
            processed=job.processed,
            chunks_embedded=job.chunks_embedded,
            eta_s=job.eta_s(),
            created=job.created,
            started=job.started,
            finished=job.finished,
            error=job.error,
            cancel_requested=job.cancel_requested,
            host=job.host,
            result=IngestResultPublic.model_validate(job.result) if job.result else None,
        )


# -- jobs ---------------------------------------------------------------------
# Progress rows are written at most this often (plus the heartbeat): a fast batch must not
# turn into one state-database write per document.
PROGRESS_EVERY_S = 0.5


class _Running:
    """What the worker knows of one job of this host: its counters and stop flag."""

    def __init__(self, job_id: str, collection: str, total: int) -> None:
        self.id = job_id
        self.collection = collection
        self.total = total
        self.processed = 0
        self.report: IngestReport | None = None
        self.started = False
        self.stop = threading.Event()
        self.stop_reason: Literal["cancel", "shutdown", "lost"] = "cancel"
        self.last_write = 0.0

    @property
    def chunks_embedded(self) -> int:
        return self.report.chunks_embedded if self.report is not None else 0

    def halt(self, reason: Literal["cancel", "shutdown", "lost"]) -> None:
        if not self.stop.is_set():
            self.stop_reason = reason
            self.stop.set()


class Ingestion:
    """The app's one writer: a lock for synchronous upserts, one worker thread for jobs.

    Jobs are rows in the state database (service.jobs): any host sharing it reads and
    cancels them; this one runs those it queued, writes their progress, and beats their
    heartbeat from a thread of its own (a long group of documents gives no progress).
    """

    def __init__(self, settings: Settings, engine: Dossier) -> None:
        self.settings = settings
        self.engine = engine
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-job")
        self.jobs = JobStore(
            settings.data_dir / JOBS_FILE, settings.state_url, settings.ingest_job_heartbeat_s
        )
        self.host = HostId()
        self._running: dict[str, _Running] = {}
        self._closing = threading.Event()
        self._beater = threading.Thread(
            target=self._beat_loop, name="ingest-heartbeat", daemon=True
        )
        self._beater.start()

    def sweep(self) -> None:
        """Fail the jobs that hosts which stopped left queued or running."""
        try:
            failed = self.jobs.sweep()
        except Exception as exc:  # the state DB down at start-up: GET sweeps lazily later
            log.warning("could not sweep orphaned ingest jobs: %s", exc)
            return
        if failed:
            log.warning("%d ingest jobs left by stopped hosts marked failed", failed)

    def ingestor(self) -> Ingestor:
        return Ingestor(self.settings, self.engine.store, self.engine.embedder)

    def run(
        self,
        collection: str,
        docs: Sequence[Document],
        report: IngestReport,
        progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> IngestResultPublic:
        with self.lock:
            done = self.ingestor().upsert(collection, docs, report, progress, should_stop)
        return _result(done, docs)

    def submit(self, collection: str, docs: Sequence[Document], report: IngestReport) -> JobRecord:
        return self.submit_work(collection, len(docs), lambda: docs, report)

    def submit_work(
        self,
        collection: str,
        total: int,
        prepare: Callable[[], Sequence[Document]],
        report: IngestReport,
    ) -> JobRecord:
        """A job that first makes its documents (e.g. fetches URLs), outside the lock.
        Its row is stored before the work is queued, so it is never lost unseen."""
        job = self.jobs.create(collection, total, str(self.host))
        run = _Running(job.id, collection, total)
        run.report = report
        self._running[job.id] = run
        self.pool.submit(self._work, run, prepare, report)
        return job

    def _work(
        self, run: _Running, prepare: Callable[[], Sequence[Document]], report: IngestReport
    ) -> None:
        host = str(self.host)
        try:
            if self._closing.is_set() or not self.jobs.start(run.id, host):
                return  # cancelled (or abandoned) while it waited
            run.started = True
            status: Status = "done"
            error: str | None = None
            result: IngestResultPublic | None = None
            try:
                docs = prepare()
                result = self.run(
                    run.collection,
                    docs,
                    report,
                    lambda n: self._advance(run, n),
                    lambda: self._should_stop(run),
                )
                if report.cancelled:
                    status = "failed" if run.stop_reason == "shutdown" else "cancelled"
                    error = SHUT_DOWN if run.stop_reason == "shutdown" else None
                else:
                    run.processed = run.total
            except DossierError as exc:
                status, error = "failed", str(exc)
            except Exception as exc:  # a job must always end with a status, never hang
                log.exception("ingest job %s failed", run.id)
                status, error = "failed", f"internal error: {type(exc).__name__}"
            if not self.jobs.finish(
                run.id,
                host,
                status,
                run.processed,
                run.chunks_embedded,
                error,
                result.model_dump(mode="json") if result is not None else None,
            ):
                log.warning("ingest job %s ended (%s) after it was marked failed", run.id, status)
        except Exception:  # the state DB failed: the row is swept as an orphan later
            log.exception("ingest job %s could not record its status", run.id)
        finally:
            self._running.pop(run.id, None)
            if self._closing.is_set() and not self._running:
                self.host.release()

    def _advance(self, run: _Running, n: int) -> None:
        run.processed = min(run.total, run.processed + n)
        now = time.monotonic()
        if now - run.last_write >= PROGRESS_EVERY_S:
            self._write_progress(run, now)

    def _write_progress(self, run: _Running, now: float) -> None:
        run.last_write = now
        try:
            going = self.jobs.progress(run.id, str(self.host), run.processed, run.chunks_embedded)
        except Exception as exc:  # a progress row is not worth failing the job over
            log.warning("ingest job %s: progress not recorded: %s", run.id, exc)
            return
        if going != "go":
            run.halt(going)

    def _should_stop(self, run: _Running) -> bool:
        # Asked before each group: a cancel from another host may not have reached the
        # heartbeat yet, so the row is read here too (at most every PROGRESS_EVERY_S).
        if not run.stop.is_set() and time.monotonic() - run.last_write >= PROGRESS_EVERY_S:
            self._write_progress(run, time.monotonic())
        return run.stop.is_set()

    def _beat_loop(self) -> None:
        while not self._closing.wait(self.settings.ingest_job_heartbeat_s):
            if not self._running:
                continue
            try:
                for job_id in self.jobs.beat(str(self.host)):
                    run = self._running.get(job_id)
                    if run is not None:
                        run.halt("cancel")
            except Exception as exc:  # a missed beat is retried; three in a row orphan it
                log.warning("ingest heartbeat failed: %s", exc)

    def stop_requested(self, job_id: str) -> bool:
        """Whether this host's worker has been told to stop the job (cancel or shutdown)."""
        run = self._running.get(job_id)
        return run is not None and run.stop.is_set()

    def cancel(self, job_id: str) -> JobRecord:
        job = self.jobs.cancel(job_id)
        run = self._running.get(job_id)
        if run is not None:  # running here: no need to wait for the next read of the row
            run.halt("cancel")
        return job

    def shutdown(self) -> None:
        """Stop taking work: queued jobs fail with SHUT_DOWN, a running one stops at its
        next group and fails the same way (committed groups stay)."""
        self._closing.set()
        self.pool.shutdown(wait=False, cancel_futures=True)
        for run in list(self._running.values()):
            run.halt("shutdown")
        try:
            self.jobs.abandon_queued(str(self.host), SHUT_DOWN)
        except Exception as exc:
            log.warning("could not mark queued ingest jobs failed: %s", exc)
        if not any(r.started for r in self._running.values()):
            self.host.release()


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


def _accepted(job: JobRecord) -> JSONResponse:
    return JSONResponse(
        status_code=202,
        content=JobPublic.from_record(job).model_dump(mode="json"),
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
    "links": {
        "GetJob": {"operationId": "get_job", "parameters": {"job_id": "$response.body#/id"}},
        "CancelJob": {"operationId": "cancel_job", "parameters": {"job_id": "$response.body#/id"}},
    }
}
CANCEL_LINKS = {
    "links": {
        "CancelJob": {"operationId": "cancel_job", "parameters": {"job_id": "$response.body#/id"}}
    }
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


JobId = Annotated[str, Path(min_length=32, max_length=32, pattern=r"^[0-9a-f]{32}$")]


def _visible_job(request: Request, principal: Principal, job_id: str) -> JobRecord:
    job = _ingestion(request).jobs.get(job_id)
    if not principal.covers(job.collection):
        raise JobNotFound(job_id)  # another scope's job reads as unknown, like its collection
    return job


@router.get(
    "/jobs/{job_id}",
    operation_id="get_job",
    summary="Progress of a background ingestion job: counts, ETA, and the result when done",
    description="Jobs are kept in the state database (SQLite beside the index, or "
    "DOSSIER_STATE_URL's PostgreSQL), so any API host sharing it answers, after restarts "
    "too. A job whose host stopped reads as failed, with the reason; re-posting its batch "
    "embeds only what is missing.",
    responses={200: CANCEL_LINKS, **errors_doc(404)},
)
def get_job(job_id: JobId, request: Request, principal: PrincipalDep) -> JobPublic:
    return JobPublic.from_record(_visible_job(request, principal, job_id))


@router.delete(
    "/jobs/{job_id}",
    operation_id="cancel_job",
    summary="Cancel a background ingestion job (write keys, within their scope)",
    description="A queued job is cancelled at once (200). A running one, on whichever host "
    "runs it, stops before its next group of documents (202, `cancel_requested`; poll GET "
    "until `cancelled`): what it committed stays and is searchable. A job that has already "
    "ended answers 409.",
    response_model=JobPublic,
    responses={
        202: {"model": JobPublic, "description": "Cancel requested."},
        **errors_doc(403, 404, 409),
    },
)
def cancel_job(
    job_id: JobId, request: Request, principal: PrincipalDep
) -> JobPublic | JSONResponse:
    job = _visible_job(request, principal, job_id)
    principal.require("write")
    job = _ingestion(request).cancel(job.id)
    public = JobPublic.from_record(job)
    if job.status == "cancelled":
        return public
    return JSONResponse(
        status_code=202,
        content=public.model_dump(mode="json"),
        headers={"Location": f"/v1/jobs/{job.id}"},
    )


def install(app: FastAPI, settings: Settings, engine: Dossier) -> Ingestion:
    ing = Ingestion(settings, engine)
    ing.sweep()
    app.state.ingestion = ing
    app.include_router(router)
    return ing
