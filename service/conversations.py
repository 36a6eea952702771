"""Server-side conversations: ``/v1/conversations``, for clients that want the server to keep
the history (``POST /v1/chat`` is the stateless form, where the client sends it).

Each new message is answered like ``/v1/chat`` answers a history (``Dossier.chat_retrieve``
reads the latest turns and searches the standalone question), then the question and the
answer with its citations are stored together. A conversation belongs to the API key
that created it; another key gets 404, as for an id that never existed.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal, Self

import anyio
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from dossier.chat.conversations import (
    Conversation,
    ConversationStore,
    SQLConversationStore,
    StoredMessage,
)
from dossier.errors import DossierError
from dossier.models import Answer
from dossier.settings import Settings
from service.auth import Principal, PrincipalDep, scoped
from service.deps import DossierDep, answer_within
from service.errors import errors_doc
from service.schemas import (
    EXAMPLE_QUESTION,
    MAX_QUESTION_CHARS,
    MAX_TOP_K,
    NOT_BLANK,
    AnswerPublic,
    AnswerSentencePublic,
    CitationPublic,
    FiltersRequest,
    domain_filters,
)
from service.streaming import STREAM_DOC, sse_response

log = logging.getLogger(__name__)

ConversationId = Annotated[str, Path(max_length=64, description="From POST /v1/conversations.")]


class ConversationCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"collection": "albania-iran", "title": "Albania"}]},
    )

    collection: str | None = Field(
        default=None,
        max_length=100,
        description="The collection every answer comes from; defaults to the configured one.",
    )
    title: str | None = Field(
        default=None,
        max_length=200,
        description="For listing; without one, the first question becomes the title.",
    )


class MessageCreate(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"content": EXAMPLE_QUESTION}]},
    )

    content: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        pattern=NOT_BLANK,
        description="The user's next question; it may lean on earlier turns "
        '("What did Iran say about it?").',
    )
    top_k: int | None = Field(
        default=None, ge=1, le=MAX_TOP_K, description="Passages to retrieve; default 5."
    )
    filters: FiltersRequest | None = Field(
        default=None, description="This answer only from matching passages, as on /v1/ask."
    )
    stream: StrictBool = Field(
        default=False,
        description="Answer with server-sent events, as /v1/ask does; the answer is stored "
        "when the stream completes.",
    )


class MessagePublic(BaseModel):
    """A stored message. The answer fields are those of the answer given (null and empty
    on the user's messages)."""

    id: str
    role: Literal["user", "assistant"]
    content: str = Field(description="The question, or the answer with its [n] markers.")
    created: str
    answerer: str | None = None
    refused: bool | None = None
    refusal_reason: str | None = None
    sentences: list[AnswerSentencePublic] = Field(default_factory=list)
    citations: list[CitationPublic] = Field(default_factory=list)
    standalone_question: str | None = Field(
        default=None, description="What was searched for this turn."
    )
    degraded: bool | None = None
    degraded_reason: str | None = None
    answerable_probability: float | None = None

    @classmethod
    def from_domain(cls, m: StoredMessage) -> Self:
        a = m.answer
        fields: dict[str, Any] = {}
        if a is not None:
            fields = {
                **a.__dict__,
                "sentences": [AnswerSentencePublic.model_validate(s) for s in a.sentences],
                "citations": [CitationPublic.model_validate(c) for c in a.citations],
            }
        return cls(id=m.id, role=m.role, content=m.content, created=m.created, **fields)


class ConversationSummaryPublic(BaseModel):
    id: str
    collection: str
    title: str | None
    created: str
    updated: str = Field(description="When the last message was stored.")
    message_count: int

    @classmethod
    def from_domain(cls, c: Conversation) -> Self:
        return cls(
            id=c.id,
            collection=c.collection,
            title=c.title,
            created=c.created,
            updated=c.updated,
            message_count=c.message_count,
        )


class ConversationPublic(ConversationSummaryPublic):
    messages: list[MessagePublic] = Field(description="Oldest first.")

    @classmethod
    def from_domain(cls, c: Conversation) -> Self:
        return cls(
            **ConversationSummaryPublic.from_domain(c).model_dump(),
            messages=[MessagePublic.from_domain(m) for m in c.messages],
        )


class ConversationAnswerPublic(AnswerPublic):
    conversation_id: str
    message_id: str = Field(description="The stored answer (role assistant).")
    question_message_id: str = Field(description="The stored question (role user).")


def _store(request: Request) -> ConversationStore:
    store: ConversationStore = request.app.state.conversations
    return store


def _owner(principal: Principal) -> str | None:
    return principal.key.id if principal.key is not None else None


def install(app: FastAPI, settings: Settings) -> None:
    """Attach the store (beside the index, so a backup keeps both) and the routes."""
    app.state.conversations = SQLConversationStore(settings.conversations_path, settings.state_url)
    app.include_router(router)


router = APIRouter(prefix="/v1/conversations", tags=["conversations"])

# OpenAPI links: what a client (and the schemathesis contract test) can do with a new id.
_ID = {"conversation_id": "$response.body#/id"}
CONVERSATION_LINKS = {
    "links": {
        "AskInIt": {"operationId": "post_message", "parameters": _ID},
        "GetIt": {"operationId": "get_conversation", "parameters": _ID},
        "DeleteIt": {"operationId": "delete_conversation", "parameters": _ID},
    }
}


@router.post(
    "",
    status_code=201,
    operation_id="create_conversation",
    summary="Start a conversation that the server keeps",
    responses={201: CONVERSATION_LINKS, **errors_doc(404, 409)},
)
def create_conversation(
    dossier: DossierDep,
    request: Request,
    principal: PrincipalDep,
    body: ConversationCreate | None = None,
) -> ConversationPublic:
    body = body or ConversationCreate()
    name = scoped(principal, dossier, body.collection, "read")
    title = body.title.strip() if body.title and body.title.strip() else None
    return ConversationPublic.from_domain(_store(request).create(_owner(principal), name, title))


@router.get(
    "",
    operation_id="list_conversations",
    summary="Your conversations, newest first (without their messages)",
    responses=errors_doc(404),
)
def list_conversations(
    request: Request,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    before: Annotated[
        str | None,
        Query(max_length=64, description="The last id of the previous page, for the next."),
    ] = None,
) -> list[ConversationSummaryPublic]:
    found = _store(request).recent(_owner(principal), limit, before)
    return [ConversationSummaryPublic.from_domain(c) for c in found]


@router.get(
    "/{conversation_id}",
    operation_id="get_conversation",
    summary="A conversation with all its messages and the answers' citations",
    responses=errors_doc(404),
)
def get_conversation(
    conversation_id: ConversationId, request: Request, principal: PrincipalDep
) -> ConversationPublic:
    return ConversationPublic.from_domain(_store(request).get(conversation_id, _owner(principal)))


@router.delete(
    "/{conversation_id}",
    status_code=204,
    operation_id="delete_conversation",
    summary="Delete a conversation and its messages",
    responses=errors_doc(404),
)
def delete_conversation(
    conversation_id: ConversationId, request: Request, principal: PrincipalDep
) -> Response:
    _store(request).delete(conversation_id, _owner(principal))
    return Response(status_code=204)


@router.post(
    "/{conversation_id}/messages",
    operation_id="post_message",
    summary="Ask the next question; the answer reads the conversation's latest turns",
    response_model=ConversationAnswerPublic,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": STREAM_DOC + " Here `done` also has conversation_id, "
            "message_id, question_message_id and stored (false, with error, when the "
            "conversation was deleted or filled up while answering).",
        },
        **errors_doc(404, 409, 504),
    },
)
def post_message(
    conversation_id: ConversationId,
    body: MessageCreate,
    dossier: DossierDep,
    request: Request,
    principal: PrincipalDep,
) -> ConversationAnswerPublic | Response:
    app_settings: Settings = request.app.state.settings
    store, owner = _store(request), _owner(principal)
    limit = app_settings.conversation_max_messages
    # Stored turns alternate question and answer, so the latest 2 × N messages are the
    # latest N turns: all that Dossier.chat (with its own settings) would read anyway.
    last = 2 * dossier.settings.chat_max_turns
    conversation = store.get(conversation_id, owner, last=last)
    conversation.check_room(limit)  # before answering, so a full one costs nothing
    name = scoped(principal, dossier, conversation.collection, "read")
    question = body.content.strip()
    messages = conversation.chat_messages(question)
    filters = domain_filters(body.filters)
    retrieved = answer_within(
        request, lambda: dossier.chat_retrieve(messages, name, body.top_k, filters=filters)
    )

    def store_turn(answer: Answer) -> tuple[StoredMessage, StoredMessage]:
        return store.add_turn(conversation_id, owner, question, answer, limit)

    if not body.stream:
        answer = answer_within(request, lambda: dossier.answer(retrieved))
        asked, answered = store_turn(answer)
        return ConversationAnswerPublic(
            **AnswerPublic.from_domain(answer).model_dump(),
            conversation_id=conversation_id,
            message_id=answered.id,
            question_message_id=asked.id,
        )

    async def on_final(answer: Answer) -> dict[str, Any]:
        ids: dict[str, Any] = {"conversation_id": conversation_id}
        try:
            asked, answered = await anyio.to_thread.run_sync(store_turn, answer)
        except DossierError as exc:  # deleted or filled up meanwhile: the answer was sent
            log.warning("streamed answer not stored: %s", exc)
            return {**ids, "stored": False, "error": str(exc)}
        return {**ids, "message_id": answered.id, "question_message_id": asked.id, "stored": True}

    return sse_response(dossier, retrieved, request, on_final)
