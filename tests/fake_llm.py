"""A tiny OpenAI-compatible chat server for the failure cases a real model cannot be made to show.

It speaks real HTTP on loopback to the real openai client; each request takes the next
step of a script: an HTTP status, a streamed reply, a stream that dies part-way, or a
reply too slow for the client's timeout. The happy path is tested against llama.cpp.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse


@dataclass
class Step:
    status: int = 200
    text: str = ""
    token_delay_s: float = 0.0
    die_after: int | None = None  # tokens sent before the connection is dropped
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class FakeState:
    script: list[Step] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    tokens_sent: int = 0
    stream_closed_early: bool = False
    stream_finished_at: float | None = None


def _chunk(content: str | None, finish: str | None = None) -> str:
    delta = {"content": content} if content is not None else {}
    body = {
        "id": "fake",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n"


def tokens(text: str) -> list[str]:
    """Split like a tokenizer would, so markers arrive in pieces ("[", "7", "]")."""
    out: list[str] = []
    for word in text.split(" "):
        out.extend([" " + word[:2], word[2:]] if len(word) > 2 else [" " + word])
    out[0] = out[0].lstrip()
    return [t for t in out if t]


def create_fake_app(state: FakeState) -> FastAPI:
    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        payload = await request.json()
        state.requests.append(payload)
        step = state.script.pop(0) if len(state.script) > 1 else state.script[0]
        if step.status != 200:
            return JSONResponse(
                {"error": {"message": f"fake {step.status}", "type": "fake"}},
                status_code=step.status,
                headers=step.headers,
            )
        if not payload.get("stream"):
            message = {"role": "assistant", "content": step.text}
            choice = {"index": 0, "message": message, "finish_reason": "stop"}
            return JSONResponse(
                {
                    "id": "fake",
                    "object": "chat.completion",
                    "created": 0,
                    "model": "fake",
                    "choices": [choice],
                }
            )

        async def body() -> AsyncIterator[str]:
            try:
                yield _chunk("")
                for i, tok in enumerate(tokens(step.text) if step.text else []):
                    if step.die_after is not None and i >= step.die_after:
                        raise ConnectionAbortedError("fake server dies mid-stream")
                    if step.token_delay_s:
                        await asyncio.sleep(step.token_delay_s)
                    state.tokens_sent += 1
                    yield _chunk(tok)
                yield _chunk(None, "stop")
                yield "data: [DONE]\n\n"
            except asyncio.CancelledError:
                state.stream_closed_early = True
                raise
            finally:
                state.stream_finished_at = time.monotonic()

        return StreamingResponse(body(), media_type="text/event-stream")

    return app
