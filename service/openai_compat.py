"""OpenAI-compatible routes: ``GET /v1/models`` and ``POST /v1/chat/completions``.

Apps that already speak the OpenAI API (the ``openai`` SDK, llama-index's ``OpenAILike``,
LangChain, LiteLLM) use Dossier unchanged. A *model* is a collection. The answer is
``choices[0].message.content`` with its ``[n]`` markers; Dossier's own fields
(``citations``, ``standalone_question``, ``refused``, ``answerable_probability``,
``degraded``) ride along at the top level, where the SDK keeps fields it does not know
(``completion.model_extra``). The conversation logic is ``/v1/chat``'s:
``Dossier.chat_retrieve`` then ``Dossier.answer``/``answer_stream``.

Choices (documented in the README):

* One ``url_citation`` annotation per marker occurrence, covering the marker itself:
  ``content[start_index:end_index] == "[n]"`` (Python slice; ``end_index`` exclusive). A
  marker is exact and unambiguous, where a "cited sentence" would have to be re-split.
* The annotation's ``url`` is always Dossier's link to the cited span,
  ``{base}/v1/documents/{doc_id}?collection=NAME#char=START,END``: it points at the text
  the offsets index into, which the article's own URL (``citations[].url``, often
  missing) does not.
* ``usage`` counts whitespace-separated words, not model tokens (the extractive answerer
  has no tokenizer): prompt = the text of every message sent, completion = the content.
* ``temperature``, ``max_tokens`` and OpenAI's other sampling fields are accepted and
  ignored: the configured answerer composes the answer with its own settings (a cited
  answer cut at a token count would cut its citations). ``n`` above 1 is a 400.
* ``filters`` (Dossier's, as on ``/v1/ask``) is a top-level body field, which the SDK
  sends from ``extra_body={"filters": {...}}``; a bad filter is a 400 in OpenAI's shape.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import asdict
from typing import Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, field_validator

from dossier.chat.condense import Message
from dossier.engine import Dossier, Retrieved
from dossier.models import Answer, Citation
from service.auth import PrincipalDep, scoped
from service.deps import DossierDep, answer_within
from service.errors import errors_doc
from service.schemas import (
    EXAMPLE_QUESTION,
    MAX_MESSAGES,
    MAX_TOP_K,
    CitationPublic,
    ConflictPublic,
    FiltersRequest,
    domain_filters,
)
from service.streaming import answer_events

router = APIRouter(prefix="/v1", tags=["OpenAI-compatible"])

MAX_CONTENT_CHARS = 20_000
OWNER = "dossier"
MARKER = re.compile(r"\[(\d+)\]")

STREAM_DOC = (
    'With "stream": true, server-sent events as OpenAI sends them: `data: {chunk}` where '
    'each chunk is a `chat.completion.chunk`: first `delta: {"role": "assistant"}`, then '
    'text deltas, then the chunk with `finish_reason: "stop"`, whose delta carries '
    "`annotations` and which carries `citations`, `answer` (the verified text the "
    "annotations index into; the streamed text unless LLM verification changed it), "
    "`standalone_question`, `refused`, `answerable_probability`; with "
    "`stream_options.include_usage`, a chunk with `usage` and no choices; then `data: [DONE]`."
)


# -- requests --------------------------------------------------------------------------


class ContentPart(BaseModel):
    """A part of a message's content; Dossier reads text parts only."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class CompletionMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")  # name, tool_calls, ... are not used

    # "developer" is OpenAI's newer name for "system"; both are dropped from the history
    # (Dossier has its own rules), as are tool results.
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts(cls, v: object) -> object:
        # Checked here so the error says what to send, not why each union arm failed.
        if isinstance(v, list):
            for part in v:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                if kind != "text" or not isinstance(part.get("text"), str):
                    raise ValueError(
                        "only text content parts are supported, as "
                        f"{{'type': 'text', 'text': '...'}}; got {kind!r}"
                    )
        elif v is not None and not isinstance(v, str):
            raise ValueError("content must be a string or a list of text parts")
        return v

    @field_validator("content")
    @classmethod
    def _bounded(cls, v: str | list[ContentPart] | None) -> str | list[ContentPart] | None:
        if v is not None and len(_text(v)) > MAX_CONTENT_CHARS:
            raise ValueError(f"content is over {MAX_CONTENT_CHARS} characters; shorten it")
        return v

    def to_domain(self) -> Message:
        text = _text(self.content)
        if self.role in ("user", "assistant"):
            return Message(self.role, text)
        return Message("system", text)


def _text(content: str | list[ContentPart] | None) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p.text or "" for p in content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: StrictBool | None = None


class ChatCompletionRequest(BaseModel):
    # OpenAI clients send many fields Dossier has no use for (user, seed, top_p, ...).
    # Numbers are strict: JSON's true/false or "5" is not a temperature or a count.
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "model": "albania-iran",
                    "messages": [
                        {"role": "user", "content": EXAMPLE_QUESTION},
                        {"role": "assistant", "content": "Albania cut ties with Iran ... [1]"},
                        {"role": "user", "content": "What did Iran say about it?"},
                    ],
                }
            ]
        },
    )

    model: str = Field(
        min_length=1, max_length=100, description="A collection (GET /v1/models lists them)."
    )
    messages: list[CompletionMessage] = Field(
        min_length=1,
        max_length=MAX_MESSAGES,
        description="The conversation so far, oldest first, ending with the user's question.",
    )
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    temperature: float | None = Field(default=None, ge=0, le=2, strict=True, description="Ignored.")
    max_tokens: int | None = Field(default=None, ge=1, strict=True, description="Ignored.")
    max_completion_tokens: int | None = Field(
        default=None, ge=1, strict=True, description="Ignored."
    )
    n: int | None = Field(
        default=None, strict=True, description="Only 1: Dossier gives one answer."
    )
    top_k: int | None = Field(
        default=None,
        ge=1,
        le=MAX_TOP_K,
        strict=True,
        description="Dossier's: passages to retrieve.",
    )
    # OpenAI clients send it in extra_body: client.chat.completions.create(...,
    # extra_body={"filters": {...}}). Unknown fields inside it are refused, as on /v1/ask.
    filters: FiltersRequest | None = Field(
        default=None,
        description="Dossier's: answer only from matching passages (as /v1/ask's filters).",
    )

    @field_validator("n")
    @classmethod
    def _one_choice(cls, v: int | None) -> int | None:
        if v is not None and v != 1:
            raise ValueError(f"only n=1 is supported (Dossier gives one answer); got {v}")
        return v

    def domain_messages(self) -> list[Message]:
        return [m.to_domain() for m in self.messages]

    def prompt_words(self) -> int:
        return sum(len(_text(m.content).split()) for m in self.messages)


# -- responses -------------------------------------------------------------------------


class ModelPublic(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = Field(description="0: Dossier does not record when a collection was made.")
    owned_by: str = OWNER


class ModelListPublic(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelPublic]


class URLCitation(BaseModel):
    start_index: int = Field(description="Where the [n] marker starts in content.")
    end_index: int = Field(description="Just past the marker: content[start:end] == '[n]'.")
    title: str
    url: str = Field(description="Dossier's link to the cited span (#char=START,END).")


class AnnotationPublic(BaseModel):
    type: Literal["url_citation"] = "url_citation"
    url_citation: URLCitation


class CompletionMessagePublic(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    annotations: list[AnnotationPublic]
    refusal: None = None


class ChoicePublic(BaseModel):
    index: int = 0
    message: CompletionMessagePublic
    finish_reason: Literal["stop"] = "stop"


class UsagePublic(BaseModel):
    """Whitespace-separated words, not model tokens."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletionPublic(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChoicePublic]
    usage: UsagePublic
    citations: list[CitationPublic] = Field(description="Dossier's citations, by number.")
    standalone_question: str | None = Field(description="What was searched.")
    refused: bool
    answerable_probability: float | None
    degraded: bool
    degraded_reason: str | None
    conflicts: list[ConflictPublic] = Field(
        default_factory=list, description="Answer sentences other sources contradict."
    )


# -- mapping ---------------------------------------------------------------------------


def span_link(request: Request, collection: str) -> Callable[[Citation], str]:
    """Dossier's absolute link to a citation's span, under this request's base URL."""
    base = str(request.base_url).rstrip("/")
    name = quote(collection, safe="")

    def link(c: Citation) -> str:
        return (
            f"{base}/v1/documents/{quote(c.doc_id, safe='')}"
            f"?collection={name}#char={c.start},{c.end}"
        )

    return link


def marker_annotations(
    text: str, citations: list[Citation], link: Callable[[Citation], str]
) -> list[AnnotationPublic]:
    """One url_citation per marker occurrence in ``text``, covering the marker."""
    by_number = {c.number: c for c in citations}
    out = []
    for m in MARKER.finditer(text):
        c = by_number.get(int(m.group(1)))
        if c is None:  # verification removes markers to unknown passages; never annotate one
            continue
        out.append(
            AnnotationPublic(
                url_citation=URLCitation(
                    start_index=m.start(), end_index=m.end(), title=c.title, url=link(c)
                )
            )
        )
    return out


def usage(body: ChatCompletionRequest, content: str) -> UsagePublic:
    prompt, completion = body.prompt_words(), len(content.split())
    return UsagePublic(
        prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion
    )


def dossier_fields(answer: Answer) -> dict[str, Any]:
    """What Dossier adds to OpenAI's completion; refusals have no citations."""
    return {
        "citations": [
            CitationPublic.model_validate(c.__dict__).model_dump()
            for c in ([] if answer.refused else answer.citations)
        ],
        "standalone_question": answer.standalone_question,
        "refused": answer.refused,
        "answerable_probability": answer.answerable_probability,
        "degraded": answer.degraded,
        "degraded_reason": answer.degraded_reason,
        "conflicts": [
            ConflictPublic.model_validate(asdict(c)).model_dump()
            for c in ([] if answer.refused else answer.conflicts)
        ],
    }


def completion(
    answer: Answer, body: ChatCompletionRequest, request: Request, cid: str, created: int
) -> ChatCompletionPublic:
    cited = [] if answer.refused else answer.citations
    notes = marker_annotations(answer.text, cited, span_link(request, answer.collection))
    return ChatCompletionPublic.model_validate(
        {
            "id": cid,
            "created": created,
            "model": answer.collection,
            "choices": [
                ChoicePublic(
                    message=CompletionMessagePublic(content=answer.text, annotations=notes)
                )
            ],
            "usage": usage(body, answer.text),
            **dossier_fields(answer),
        }
    )


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


async def completion_chunks(
    dossier: Dossier,
    retrieved: Retrieved,
    body: ChatCompletionRequest,
    request: Request,
    cid: str,
    created: int,
) -> AsyncIterator[str]:
    """``/v1/chat/completions`` with ``"stream": true``, from the shared answer events."""
    model = retrieved.context.collection

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return _data(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [choice],
                **extra,
            }
        )

    yield chunk({"role": "assistant"})
    final: Answer | None = None
    streamed = ""
    async with aclosing(answer_events(dossier, retrieved, request)) as events:
        async for event in events:
            if isinstance(event, Answer):
                final = event
            else:
                streamed += event.text
                yield chunk({"content": event.text})
    if final is None:  # the client disconnected
        return
    if final.text.startswith(streamed) and final.text != streamed:
        # Answerers that cannot stream (extractive, refusals) send their text here, and a
        # verified answer that only added to the streamed text sends the rest.
        yield chunk({"content": final.text[len(streamed) :]})
    cited = [] if final.refused else final.citations
    notes = marker_annotations(final.text, cited, span_link(request, model))
    yield chunk(
        {"annotations": [n.model_dump() for n in notes]},
        "stop",
        answer=final.text,
        **dossier_fields(final),
    )
    if body.stream_options and body.stream_options.include_usage:
        yield _data(
            {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage(body, final.text).model_dump(),
            }
        )
    yield "data: [DONE]\n\n"


# -- routes ----------------------------------------------------------------------------


@router.get(
    "/models",
    summary="The collections this key can read, as OpenAI models",
    response_model=ModelListPublic,
    responses=errors_doc(openai=True),
)
def list_models(dossier: DossierDep, principal: PrincipalDep) -> ModelListPublic:
    names = sorted(c.name for c in dossier.collections() if principal.covers(c.name))
    return ModelListPublic(data=[ModelPublic(id=n, created=0) for n in names])


@router.get(
    "/models/{model}",
    summary="One collection, as an OpenAI model",
    response_model=ModelPublic,
    responses=errors_doc(404, 409, openai=True),
)
def get_model(model: str, dossier: DossierDep, principal: PrincipalDep) -> ModelPublic:
    return ModelPublic(id=scoped(principal, dossier, model, "read"), created=0)


@router.post(
    "/chat/completions",
    summary="OpenAI-compatible chat: the answer with [n] markers, annotations and citations",
    response_model=ChatCompletionPublic,
    responses={
        200: {"content": {"text/event-stream": {}}, "description": STREAM_DOC},
        **errors_doc(400, 404, 409, 504, openai=True),
    },
)
def chat_completions(
    body: ChatCompletionRequest, dossier: DossierDep, request: Request, principal: PrincipalDep
) -> ChatCompletionPublic | Response:
    name = scoped(principal, dossier, body.model, "read")
    messages = body.domain_messages()
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    # Validation and retrieval happen before a stream opens, so bad input is still a 4xx.
    filters = domain_filters(body.filters)
    retrieved = answer_within(
        request, lambda: dossier.chat_retrieve(messages, name, body.top_k, filters=filters)
    )
    if not body.stream:
        answer = answer_within(request, lambda: dossier.answer(retrieved))
        return completion(answer, body, request, cid, created)
    return StreamingResponse(
        completion_chunks(dossier, retrieved, body, request, cid, created),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
