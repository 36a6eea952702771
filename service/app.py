"""FastAPI application: ``create_app()`` builds it; ``dossier serve`` runs it with uvicorn."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dossier import __version__
from dossier.engine import Dossier
from dossier.errors import ConfigurationError
from dossier.index.filters import PassageFilter
from dossier.settings import Settings, get_settings, is_loopback
from service import conversations, errors, feedback, ingestion, openai_compat
from service.auth import PrincipalDep, TokenBuckets, scoped

# The engine dependency and the answer time limit live in service.deps, for every router.
from service.deps import DossierDep, answer_within
from service.errors import errors_doc
from service.keys import KEYS_FILE, KeyStore
from service.limits import BodySizeLimit, cors_options
from service.schemas import (
    EXAMPLE_QUESTION,
    MAX_FILTER_DOC_IDS,
    MAX_QUESTION_CHARS,
    MAX_TOP_K,
    NOT_BLANK,
    AnswerPublic,
    AskRequest,
    ChatRequest,
    CollectionPublic,
    DocumentDetailPublic,
    DocumentPublic,
    FilterDate,
    FiltersRequest,
    HealthPublic,
    PassagePublic,
    SearchPublic,
    domain_filters,
)
from service.streaming import STREAM_DOC, sse_response

log = logging.getLogger(__name__)


v1 = APIRouter(prefix="/v1")


@v1.post(
    "/ask",
    summary="Answer a question with cited passages, or refuse",
    response_model=AnswerPublic,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": STREAM_DOC},
        **errors_doc(400, 404, 409, 504),
    },
)
def ask(
    body: AskRequest, dossier: DossierDep, request: Request, principal: PrincipalDep
) -> AnswerPublic | Response:
    name = scoped(principal, dossier, body.collection, "read")
    filters = domain_filters(body.filters)
    if not body.stream:
        answer = answer_within(
            request, lambda: dossier.ask(body.question, name, body.top_k, filters=filters)
        )
        return AnswerPublic.from_domain(answer)
    # Validation and retrieval happen before the stream opens, so bad input is still a 4xx.
    retrieved = answer_within(
        request, lambda: dossier.retrieve(body.question, name, body.top_k, filters=filters)
    )
    return sse_response(dossier, retrieved, request)


@v1.post(
    "/chat",
    summary="Answer the latest message of a conversation, reading the earlier turns",
    response_model=AnswerPublic,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": STREAM_DOC},
        **errors_doc(400, 404, 409, 504),
    },
)
def chat(
    body: ChatRequest, dossier: DossierDep, request: Request, principal: PrincipalDep
) -> AnswerPublic | Response:
    """Stateless: the client sends the history, as OpenAI clients do. The answer's
    ``standalone_question`` is what was searched."""
    name = scoped(principal, dossier, body.collection, "read")
    messages = body.domain_messages()
    filters = domain_filters(body.filters)
    retrieved = answer_within(
        request, lambda: dossier.chat_retrieve(messages, name, body.top_k, filters=filters)
    )
    if not body.stream:
        answer = answer_within(request, lambda: dossier.answer(retrieved))
        return AnswerPublic.from_domain(answer)
    return sse_response(dossier, retrieved, request)


@v1.get(
    "/search",
    summary="Ranked passages for a query (hybrid dense + BM25)",
    responses=errors_doc(400, 404, 409),
)
def search(
    dossier: DossierDep,
    principal: PrincipalDep,
    q: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUESTION_CHARS,
            pattern=NOT_BLANK,
            description="The query (not only whitespace).",
            examples=[EXAMPLE_QUESTION],
        ),
    ],
    collection: Annotated[str | None, Query(max_length=100)] = None,
    k: Annotated[int | None, Query(ge=1, le=MAX_TOP_K, description="Default 5.")] = None,
    doc_ids: Annotated[
        list[Annotated[str, Query(min_length=1, max_length=200)]] | None,
        Query(
            min_length=1,
            max_length=MAX_FILTER_DOC_IDS,
            description="Only these documents; repeat it for several (doc_ids=a&doc_ids=b).",
        ),
    ] = None,
    published_after: Annotated[
        FilterDate | None, Query(description="Published on or after this day, YYYY-MM-DD.")
    ] = None,
    published_before: Annotated[
        FilterDate | None, Query(description="Published on or before this day, YYYY-MM-DD.")
    ] = None,
    publisher: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=NOT_BLANK,
            description="Only this publisher: an exact match, ignoring case.",
        ),
    ] = None,
) -> SearchPublic:
    """The filters are /v1/ask's ``filters`` fields, as query parameters."""
    filters = _query_filters(doc_ids, published_after, published_before, publisher)
    name = scoped(principal, dossier, collection, "read")
    passages = dossier.search(q, name, k, filters=filters)
    return SearchPublic(
        query=q, collection=name, passages=[PassagePublic.from_domain(sp) for sp in passages]
    )


def _query_filters(
    doc_ids: list[str] | None,
    published_after: object,
    published_before: object,
    publisher: str | None,
) -> PassageFilter | None:
    """The search's filter parameters, checked as /v1/ask's ``filters`` body is, so the same
    mistakes get the same 422 (``published_after`` after ``published_before``)."""
    given = {
        "doc_ids": doc_ids,
        "published_after": published_after,
        "published_before": published_before,
        "publisher": publisher,
    }
    given = {key: value for key, value in given.items() if value is not None}
    if not given:
        return None
    try:
        return FiltersRequest.model_validate(given).to_domain()
    except ValidationError as exc:  # into the one 422 handler (service/errors.py)
        raise RequestValidationError(
            # The order check is the model's: it names no field, so it is the dates'.
            [
                {**err, "loc": ("query", *(err["loc"] or ("published_after",)))}
                for err in exc.errors()
            ]
        ) from None


@v1.get(
    "/collections",
    summary="Collections with document and chunk counts (those the key can see)",
    responses=errors_doc(),
)
def collections(dossier: DossierDep, principal: PrincipalDep) -> list[CollectionPublic]:
    return [
        CollectionPublic.model_validate(c)
        for c in dossier.collections()
        if principal.covers(c.name)
    ]


def _doc_public(info: object) -> dict[str, object]:
    data = dict(info.__dict__)
    data["tags"] = list(data["tags"])
    data["duplicates"] = list(data["duplicates"])
    data["pages"] = [span.__dict__ for span in data.get("pages", ())]
    return data


@v1.get(
    "/documents",
    summary="Documents of a collection (metadata only)",
    responses=errors_doc(404, 409),
)
def documents(
    dossier: DossierDep, principal: PrincipalDep, collection: str | None = None
) -> list[DocumentPublic]:
    name = scoped(principal, dossier, collection, "read")
    return [DocumentPublic.model_validate(_doc_public(d)) for d in dossier.documents(name)]


@v1.get(
    "/documents/{doc_id}",
    operation_id="get_document",
    summary="One document: cleaned text and metadata",
    responses=errors_doc(404, 409),
)
def document(
    doc_id: str, dossier: DossierDep, principal: PrincipalDep, collection: str | None = None
) -> DocumentDetailPublic:
    stored = dossier.document(doc_id, scoped(principal, dossier, collection, "read"))
    return DocumentDetailPublic.model_validate({**_doc_public(stored.info), "text": stored.text})


class WorkerHeader:
    """Names the process that answered (``X-Dossier-Worker: PID``), for ``--workers N``.

    Plain ASGI rather than ``@app.middleware``, which would buffer streamed answers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.header = (b"x-dossier-worker", str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_named(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_named)


def create_app(settings: Settings | None = None, dossier: Dossier | None = None) -> FastAPI:
    settings = settings or get_settings()
    if settings.auth is False and not is_loopback(settings.host):
        raise ConfigurationError(
            f"DOSSIER_AUTH=false with DOSSIER_HOST={settings.host}: an API reachable beyond "
            "loopback must authenticate. Unset DOSSIER_AUTH, or bind to 127.0.0.1."
        )
    engine = dossier or Dossier(settings)
    answer_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="answer")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load the model and the BM25 index now, so the first user does not wait.
        try:
            engine.warm_up()
        except Exception as exc:  # a broken backend must still let /healthz answer
            log.warning("warm-up failed: %s", exc)
        yield
        answer_pool.shutdown(wait=False, cancel_futures=True)
        ingest_jobs.shutdown()

    app = FastAPI(
        title="Dossier",
        version=__version__,
        summary="Cited answers over a curated corpus, or an honest refusal.",
        lifespan=lifespan,
    )
    app.state.dossier = engine
    app.add_middleware(WorkerHeader)
    app.state.settings = settings
    app.state.answer_pool = answer_pool
    app.state.auth_required = settings.auth_required
    app.state.keys = KeyStore(settings.data_dir / KEYS_FILE, settings.state_url)
    app.state.rate_limiter = TokenBuckets(settings.rate_limit_per_minute, settings.rate_limit_burst)
    errors.install(app)
    app.include_router(v1)
    app.include_router(openai_compat.router)
    feedback.install(app, settings.data_dir, settings.state_url)
    conversations.install(app, settings)
    ingest_jobs = ingestion.install(app, settings, engine)
    # Outermost last: the size limit runs before CORS and before any route reads the body.
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, **cors_options(settings.cors_origins))
    app.add_middleware(BodySizeLimit, max_bytes=int(settings.max_body_mb * 1_000_000))
    if settings.auth_required:
        log.info("API keys required (host %s)", settings.host)

    @app.get("/healthz", summary="Liveness (never needs a key)")
    def healthz() -> HealthPublic:
        return HealthPublic(status="ok", version=__version__)

    publish_auth_mode(app, settings.auth_required)
    return app


def publish_auth_mode(app: FastAPI, required: bool) -> None:
    """Make /openapi.json say what this server enforces. Every /v1 route declares the
    Bearer scheme (service.auth); where keys are not required (the loopback default) a
    request without one is served, so each such route lists no-auth (``{}``) as an
    alternative: a key is optional there, yet still checked when sent (a wrong ``dsk_`` key
    is a 401)."""

    def openapi() -> dict[str, Any]:
        fresh = app.openapi_schema is None
        schema = FastAPI.openapi(app)  # built once, then cached on the app
        if fresh and not required:
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    security = operation.get("security")
                    if security and {} not in security:
                        operation["security"] = [{}, *security]
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
