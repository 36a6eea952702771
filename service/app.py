"""FastAPI application: ``create_app()`` builds it; ``dossier serve`` runs it with uvicorn."""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dossier import __version__
from dossier.engine import Dossier
from dossier.models import Answer, ScoredPassage
from dossier.settings import Settings, get_settings
from service import errors, feedback
from service.schemas import (
    EXAMPLE_QUESTION,
    AnswerPublic,
    AskRequest,
    CollectionPublic,
    DocumentDetailPublic,
    DocumentPublic,
    ErrorPublic,
    HealthPublic,
    PassagePublic,
    SearchPublic,
)
from service.streaming import STREAM_DOC, sse_events

log = logging.getLogger(__name__)

ERRORS = {
    400: {"model": ErrorPublic, "description": "Bad input; the message says what to fix."},
    404: {"model": ErrorPublic, "description": "Unknown collection or document."},
    409: {"model": ErrorPublic, "description": "Collection built with another embedder."},
    422: {"model": ErrorPublic, "description": "Malformed request."},
    503: {"model": ErrorPublic, "description": "A backend or model is unavailable."},
}


def get_dossier(request: Request) -> Dossier:
    engine: Dossier = request.app.state.dossier
    return engine


DossierDep = Annotated[Dossier, Depends(get_dossier)]


def passage_public(sp: ScoredPassage) -> PassagePublic:
    p = sp.passage
    return PassagePublic(
        passage_id=p.passage_id,
        doc_id=p.doc_id,
        title=p.title,
        publisher=p.publisher,
        url=p.url,
        published=p.published,
        text=p.text,
        start=p.start,
        end=p.end,
        score=sp.score,
        dense_similarity=sp.dense_similarity,
        lexical_score=sp.lexical_score,
    )


def answer_public(a: Answer) -> AnswerPublic:
    return AnswerPublic.model_validate(
        {
            **a.__dict__,
            "answer": a.text,
            "sentences": [s.__dict__ for s in a.sentences],
            "citations": [c.__dict__ for c in a.citations],
            "passages": [passage_public(sp) for sp in a.passages],
        }
    )


v1 = APIRouter(prefix="/v1", responses=ERRORS)  # type: ignore[arg-type]


@v1.post(
    "/ask",
    summary="Answer a question with cited passages, or refuse",
    response_model=AnswerPublic,
    responses={200: {"content": {"text/event-stream": {}}, "description": STREAM_DOC}},
)
def ask(body: AskRequest, dossier: DossierDep, request: Request) -> AnswerPublic | Response:
    if not body.stream:
        return answer_public(dossier.ask(body.question, body.collection, body.top_k))
    # Validation and retrieval happen before the stream opens, so bad input is still a 4xx.
    retrieved = dossier.retrieve(body.question, body.collection, body.top_k)
    return StreamingResponse(
        sse_events(dossier, retrieved, request),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@v1.get("/search", summary="Ranked passages for a query (hybrid dense + BM25)")
def search(
    dossier: DossierDep,
    q: Annotated[str, Query(description="The query.", examples=[EXAMPLE_QUESTION])],
    collection: str | None = None,
    k: int | None = None,
) -> SearchPublic:
    passages = dossier.search(q, collection, k)
    return SearchPublic(
        query=q,
        collection=dossier.collection(collection),
        passages=[passage_public(sp) for sp in passages],
    )


@v1.get("/collections", summary="Collections with document and chunk counts")
def collections(dossier: DossierDep) -> list[CollectionPublic]:
    return [CollectionPublic.model_validate(c) for c in dossier.collections()]


def _doc_public(info: object) -> dict[str, object]:
    data = dict(info.__dict__)
    data["tags"] = list(data["tags"])
    data["duplicates"] = list(data["duplicates"])
    return data


@v1.get("/documents", summary="Documents of a collection (metadata only)")
def documents(dossier: DossierDep, collection: str | None = None) -> list[DocumentPublic]:
    return [DocumentPublic.model_validate(_doc_public(d)) for d in dossier.documents(collection)]


@v1.get("/documents/{doc_id}", summary="One document: cleaned text and metadata")
def document(
    doc_id: str, dossier: DossierDep, collection: str | None = None
) -> DocumentDetailPublic:
    stored = dossier.document(doc_id, collection)
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
    engine = dossier or Dossier(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Load the model and the BM25 index now, so the first user does not wait.
        try:
            engine.warm_up()
        except Exception as exc:  # a broken backend must still let /healthz answer
            log.warning("warm-up failed: %s", exc)
        yield

    app = FastAPI(
        title="Dossier",
        version=__version__,
        summary="Cited answers over a curated corpus, or an honest refusal.",
        lifespan=lifespan,
    )
    app.state.dossier = engine
    app.add_middleware(WorkerHeader)
    errors.install(app)
    app.include_router(v1)
    feedback.install(app, settings.data_dir)

    @app.get("/healthz", summary="Liveness")
    def healthz() -> HealthPublic:
        return HealthPublic(status="ok", version=__version__)

    return app
