"""Request and response bodies of the HTTP API (``*Create``/``*Request`` in, ``*Public`` out)."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import date
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, model_validator

from dossier.chat.condense import Message
from dossier.index.filters import PassageFilter
from dossier.models import Answer, ScoredPassage

EXAMPLE_QUESTION = "Why did Albania expel Iranian diplomats?"
# The schema's bounds are the hard caps of the settings DOSSIER_MAX_QUESTION_CHARS and
# DOSSIER_MAX_TOP_K (see dossier.settings), so a schema-valid request is never a 400 at
# the defaults. A deployment that lowers a setting answers 400 above its own limit.
MAX_QUESTION_CHARS = 1000
MAX_TOP_K = 50
NOT_BLANK = r"\S"


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)


MAX_FILTER_DOC_IDS = 1000
_FULL_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _iso_date(value: object) -> object:
    # Pydantic's own date parsing also takes Unix timestamps and says only "invalid date";
    # a filter date is a calendar day, and the error should show the format to send.
    # Exactly RFC 3339's full-date, which the schema publishes (format: date); Python's
    # fromisoformat alone also takes "20240131" and week dates.
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _FULL_DATE.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:  # 2024-02-30
            pass
    raise ValueError(f"must be a date as YYYY-MM-DD (e.g. 2024-01-31); got {value!r}")


FilterDate = Annotated[
    date,
    BeforeValidator(_iso_date),
    Field(description="A calendar day, YYYY-MM-DD; inclusive.", examples=["2022-09-01"]),
]


class FiltersRequest(BaseModel):
    """Restrict retrieval (and so the answer) to some documents, dates or a publisher.

    Every field is optional; given fields must all hold. A passage without a publication
    date never matches a date bound. Collections ingested before filters existed need a
    re-ingest (``dossier ingest``) before date and publisher filters find their passages.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"published_after": "2022-09-01", "published_before": "2022-09-30"}]
        },
    )

    doc_ids: list[Annotated[str, Field(min_length=1, max_length=200)]] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_FILTER_DOC_IDS,
        description="Only these documents (ids from GET /v1/documents).",
    )
    published_after: FilterDate | None = None
    published_before: FilterDate | None = None
    publisher: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        pattern=NOT_BLANK,
        description="Only this publisher: an exact match, ignoring case.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        lo, hi = self.published_after, self.published_before
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(
                f"published_after ({lo.isoformat()}) is after published_before "
                f"({hi.isoformat()}); no date is in that range"
            )
        return self

    def to_domain(self) -> PassageFilter:
        return PassageFilter(
            doc_ids=tuple(dict.fromkeys(self.doc_ids)) if self.doc_ids is not None else None,
            published_after=self.published_after,
            published_before=self.published_before,
            publisher=self.publisher.strip() if self.publisher is not None else None,
        )


def domain_filters(filters: FiltersRequest | None) -> PassageFilter | None:
    return None if filters is None else filters.to_domain()


class _AnswerOptions(BaseModel):
    """What /v1/ask and /v1/chat share: where to look, how many passages, which ones."""

    collection: str | None = Field(
        default=None, max_length=100, description="Defaults to the configured one."
    )
    top_k: int | None = Field(
        default=None, ge=1, le=MAX_TOP_K, description="Passages to retrieve; default 5."
    )
    filters: FiltersRequest | None = Field(
        default=None,
        description="Answer only from matching passages; when none match, the answer "
        "is a refusal that says so.",
    )


class AskRequest(_AnswerOptions):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"question": EXAMPLE_QUESTION, "collection": "albania-iran", "top_k": 5}]
        },
    )

    question: str = Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        pattern=NOT_BLANK,
        description="The question, in plain language (not only whitespace).",
    )
    stream: StrictBool = Field(
        default=False,
        description="Answer with server-sent events: passages, text deltas, citations, done.",
    )


MAX_MESSAGES = 100


class ChatMessage(BaseModel):
    """One message of a conversation, as OpenAI clients send it."""

    model_config = ConfigDict(extra="ignore")  # clients add fields such as "name"

    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=20_000)

    def to_domain(self) -> Message:
        return Message(self.role, self.content)


class ChatRequest(_AnswerOptions):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "messages": [
                        {"role": "user", "content": EXAMPLE_QUESTION},
                        {"role": "assistant", "content": "Albania cut ties with Iran ... [1]"},
                        {"role": "user", "content": "What did Iran say about it?"},
                    ],
                    "collection": "albania-iran",
                }
            ]
        },
    )

    messages: list[ChatMessage] = Field(
        min_length=1,
        max_length=MAX_MESSAGES,
        description="The conversation so far, oldest first, ending with the user's question. "
        "Only the latest turns are read (DOSSIER_CHAT_MAX_TURNS).",
    )
    stream: StrictBool = Field(
        default=False,
        description="Answer with server-sent events, as /v1/ask does.",
    )

    def domain_messages(self) -> list[Message]:
        return [m.to_domain() for m in self.messages]


class CitationPublic(_Public):
    number: int = Field(description="The n of the [n] marker in the answer text.")
    doc_id: str
    passage_id: str
    title: str
    publisher: str | None
    url: str | None
    published: str | None
    author: str | None = None
    page: int | None = Field(
        default=None, description="The cited sentence's page, for a paged source (PDF)."
    )
    passage_text: str
    quote: str = Field(description="The cited sentence.")
    start: int = Field(description="Start of the cited sentence in the document text.")
    end: int


class AnswerSentencePublic(_Public):
    text: str
    citations: list[int]
    supported: bool | None
    support: float | None = Field(default=None, description="Support score, when verified.")


class DisagreeingSourcePublic(_Public):
    value: str = Field(description="The value this source gives, as written.")
    citation: int = Field(description="The [n] of its sentence among the answer's citations.")
    quote: str = Field(description="Its sentence, exactly as in the document.")
    doc_id: str
    passage_id: str
    title: str
    publisher: str | None
    published: str | None
    start: int = Field(description="Start of the quote in the document text.")
    end: int


class ConflictPublic(_Public):
    sentence: int = Field(description="Index of the answer sentence (in `sentences`).")
    value: str = Field(description="The value the answer sentence states.")
    citation: int | None = Field(description="The answer sentence's own [n].")
    sources: list[DisagreeingSourcePublic] = Field(
        description="Other documents that state another value; earliest published first."
    )


class PassagePublic(BaseModel):
    passage_id: str
    doc_id: str
    title: str
    publisher: str | None
    url: str | None
    published: str | None
    author: str | None = None
    page: int | None = None
    text: str
    start: int
    end: int
    score: float
    dense_similarity: float | None
    lexical_score: float | None

    @classmethod
    def from_domain(cls, sp: ScoredPassage) -> Self:
        p = sp.passage
        return cls(
            passage_id=p.passage_id,
            doc_id=p.doc_id,
            title=p.title,
            publisher=p.publisher,
            url=p.url,
            published=p.published,
            author=p.author,
            page=p.page,
            text=p.text,
            start=p.start,
            end=p.end,
            score=sp.score,
            dense_similarity=sp.dense_similarity,
            lexical_score=sp.lexical_score,
        )


class AnswerPublic(_Public):
    question: str
    collection: str
    answer: str = Field(description="Answer text with [n] citation markers, or the refusal.")
    refused: bool
    refusal_reason: str | None
    answerer: str
    sentences: list[AnswerSentencePublic]
    citations: list[CitationPublic]
    passages: list[PassagePublic] = Field(description="What was retrieved, best first.")
    timings: dict[str, float]
    degraded: bool = Field(
        default=False, description="The configured answerer failed; this is the fallback answer."
    )
    degraded_reason: str | None = None
    answerable_probability: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description=(
            "The answer model's calibrated probability that the retrieved passages answer "
            "the question; below the model's threshold the answer is a refusal. Null for "
            "answerers without the model (e.g. when the LLM wrote the answer)."
        ),
    )
    standalone_question: str | None = Field(
        default=None,
        description=(
            "In a conversation: the question as it was searched, with what it refers to in "
            "earlier turns made explicit. Null for a single question."
        ),
    )
    conflicts: list[ConflictPublic] = Field(
        default_factory=list,
        description=(
            "Answer sentences whose figure or date another retrieved source states "
            "otherwise; each disagreeing sentence is also among `citations`."
        ),
    )

    @classmethod
    def from_domain(cls, a: Answer) -> Self:
        return cls.model_validate(
            {
                **a.__dict__,
                "answer": a.text,
                "sentences": [s.__dict__ for s in a.sentences],
                "citations": [c.__dict__ for c in a.citations],
                "passages": [PassagePublic.from_domain(sp) for sp in a.passages],
                "conflicts": [asdict(c) for c in a.conflicts],
            }
        )


class SearchPublic(BaseModel):
    query: str
    collection: str
    passages: list[PassagePublic]


class CollectionPublic(_Public):
    name: str
    documents: int
    chunks: int
    embedder: str


class DocumentPublic(_Public):
    doc_id: str
    collection: str
    title: str
    source_path: str
    publisher: str | None
    url: str | None
    published: str | None
    language: str | None
    author: str | None = None
    tags: list[str]
    chunks: int
    duplicates: list[str] = Field(description="Paths of identical articles stored only once.")


class PagePublic(BaseModel):
    page: int = Field(description="1-based page number in the source file.")
    start: int = Field(description="Where the page starts in the document text.")
    end: int


class DocumentDetailPublic(DocumentPublic):
    text: str = Field(description="The cleaned text that citation offsets point into.")
    pages: list[PagePublic] = Field(
        default_factory=list,
        description="A paged source's pages as spans of `text` (empty for other files); "
        "a citation's `start` lies in the page its `page` names.",
    )


class HealthPublic(BaseModel):
    status: str
    version: str


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorPublic(BaseModel):
    error: ErrorBody


class OpenAIErrorBody(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, ...")
    param: str | None = Field(default=None, description="The request field at fault.")
    code: str | None = Field(default=None, description="e.g. model_not_found, invalid_input.")


class OpenAIErrorPublic(BaseModel):
    """Errors of the OpenAI-compatible routes, in OpenAI's shape (the SDKs parse it)."""

    error: OpenAIErrorBody
