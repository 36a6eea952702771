"""``POST /v1/ask`` with ``"stream": true``: the answer as server-sent events."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator
from contextlib import aclosing
from dataclasses import replace
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse

from dossier.answer.base import StreamEvent
from dossier.answer.registry import build_answerer
from dossier.engine import Dossier, Retrieved
from dossier.models import Answer
from service.schemas import AnswerPublic, PassagePublic

log = logging.getLogger(__name__)

STREAM_DOC = (
    'With "stream": true, server-sent events in this order: `passages` '
    "({collection, standalone_question, passages}) as soon as retrieval is done; "
    "`delta` ({text}) while the "
    "answer is written (markers to unknown passages already removed); `citations` (the "
    "verified answer: answer, sentences with supported/support, citations, refused, "
    "degraded, degraded_reason; its `answer` replaces the streamed text); `done` ({timings})."
)


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def _next(events: Generator[StreamEvent, None, None]) -> StreamEvent | None:
    return next(events, None)


async def answer_events(
    dossier: Dossier, retrieved: Retrieved, request: Request
) -> AsyncGenerator[StreamEvent, None]:
    """The answer as domain events for a streamed response: text deltas as they are
    written, then the final Answer (the extractive one, marked degraded, when the
    answerer fails). Ends without an Answer when the client disconnects.

    Shared by every streaming route (``/v1/ask``, ``/v1/chat``, ``/v1/chat/completions``),
    which only differ in how they put these events on the wire.
    """
    events = dossier.answer_stream(retrieved)
    final: Answer | None = None
    try:
        while final is None:
            # The model client blocks, so each step runs in a worker thread; between
            # steps a disconnected client ends the loop, and `finally` stops generation.
            event = await anyio.to_thread.run_sync(_next, events)
            if await request.is_disconnected():
                log.info("client disconnected; generation stopped")
                return
            if event is None:
                break
            if isinstance(event, Answer):
                final = event
            else:
                yield event
    except Exception as exc:  # the caller gets the extractive answer, never a 500
        log.exception("streaming answer failed")
        fallback = build_answerer(dossier.settings, "extractive")
        r = retrieved
        final = r.timed(
            replace(
                fallback.answer(r.question, r.passages, r.context),
                degraded=True,
                degraded_reason=f"the answer stream failed ({type(exc).__name__})",
            )
        )
    finally:
        # Shielded: on a disconnect Starlette cancels this generator, and an unshielded
        # await here would be cancelled too, leaving the model generating for nobody.
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(events.close)
    if final is not None:  # None only if answer_stream ended without an Answer
        yield final


# Called with the final answer before `done`; what it returns is added to `done`'s data
# (a stored conversation puts the ids of the messages it stored there).
OnFinal = Callable[[Answer], Awaitable[dict[str, Any]]]


def sse_response(
    dossier: Dossier, retrieved: Retrieved, request: Request, on_final: OnFinal | None = None
) -> StreamingResponse:
    return StreamingResponse(
        sse_events(dossier, retrieved, request, on_final),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def sse_events(
    dossier: Dossier, retrieved: Retrieved, request: Request, on_final: OnFinal | None = None
) -> AsyncIterator[str]:
    yield sse(
        "passages",
        {
            "collection": retrieved.context.collection,
            "standalone_question": retrieved.standalone.question if retrieved.standalone else None,
            "passages": [PassagePublic.from_domain(sp).model_dump() for sp in retrieved.passages],
        },
    )
    final: Answer | None = None
    streamed = False
    async with aclosing(answer_events(dossier, retrieved, request)) as events:
        async for event in events:
            if isinstance(event, Answer):
                final = event
            else:
                streamed = True
                yield sse("delta", {"text": event.text})
    if final is None:  # the client disconnected
        return
    if not streamed and not final.refused:
        # Answerers that cannot stream (extractive) still keep the event contract.
        yield sse("delta", {"text": final.text})
    body = AnswerPublic.from_domain(final).model_dump(exclude={"passages", "timings"})
    yield sse("citations", body)
    extra = await on_final(final) if on_final is not None else {}
    yield sse("done", {"timings": final.timings, **extra})
