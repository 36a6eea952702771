"""Domain types shared by ingestion, the service, the UI and the evals.

Offsets are character offsets into a document's *cleaned* text (what
``GET /v1/documents/{id}`` returns), so a citation can point at an exact span.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class PageSpan:
    """Where one page of a paged source lies in the document's cleaned text."""

    page: int  # 1-based, as printed on a PDF viewer's page counter
    start: int
    end: int


@dataclass(frozen=True)
class Document:
    """One article, cleaned and ready to chunk."""

    doc_id: str
    collection: str
    source_path: str
    title: str
    text: str
    content_hash: str
    publisher: str | None = None
    url: str | None = None
    published: str | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    author: str | None = None
    # A paged source (PDF): (page number, start, end) spans of ``text``, in order. Chunks
    # never cross a page's end, so every passage (and citation) has one page.
    pages: tuple[PageSpan, ...] = ()


@dataclass(frozen=True)
class Passage:
    """A chunk of a document: the unit that is embedded, retrieved and cited."""

    passage_id: str
    doc_id: str
    text: str
    start: int
    end: int
    title: str
    publisher: str | None = None
    url: str | None = None
    published: str | None = None
    author: str | None = None
    page: int | None = None  # its page in a paged source (PDF); passages never cross pages


@dataclass(frozen=True)
class ScoredPassage:
    passage: Passage
    score: float
    # Per-retriever evidence, kept so callers can see why a passage ranked.
    dense_similarity: float | None = None
    lexical_score: float | None = None


@dataclass(frozen=True)
class Citation:
    """What a [n] marker points at: a sentence span inside a passage of a document."""

    number: int
    doc_id: str
    passage_id: str
    title: str
    passage_text: str
    quote: str
    start: int
    end: int
    publisher: str | None = None
    url: str | None = None
    published: str | None = None
    author: str | None = None
    page: int | None = None

    @classmethod
    def of(cls, number: int, passage: Passage, start: int, end: int) -> Citation:
        """Cite the span ``start:end`` (document offsets) inside ``passage``."""
        return cls(
            number=number,
            doc_id=passage.doc_id,
            passage_id=passage.passage_id,
            title=passage.title,
            passage_text=passage.text,
            quote=passage.text[start - passage.start : end - passage.start],
            start=start,
            end=end,
            publisher=passage.publisher,
            url=passage.url,
            published=passage.published,
            author=passage.author,
            page=passage.page,
        )


@dataclass(frozen=True)
class AnswerSentence:
    text: str
    citations: tuple[int, ...]
    supported: bool | None = None
    # The support scorer's score against the best cited passage, when it was verified.
    support: float | None = None


@dataclass(frozen=True)
class DisagreeingSource:
    """Another document that states an answer sentence's claim with another value."""

    value: str  # the value it gives, as written ("1:47.97", "$1.2bn", "5 March")
    citation: int  # the [n] of its sentence among the answer's citations
    quote: str  # its sentence, exactly as in the document
    doc_id: str
    passage_id: str
    title: str
    publisher: str | None
    published: str | None
    start: int  # document offsets of ``quote``
    end: int


@dataclass(frozen=True)
class Conflict:
    """An answer sentence whose value other sources contradict (dossier/verify/conflicts.py)."""

    sentence: int  # index into Answer.sentences
    value: str  # what the answer sentence states
    citation: int | None  # the answer sentence's own [n]
    sources: tuple[DisagreeingSource, ...]  # earliest published first, when known


@dataclass
class Answer:
    question: str
    collection: str
    text: str
    sentences: list[AnswerSentence]
    citations: list[Citation]
    refused: bool
    answerer: str
    passages: list[ScoredPassage] = field(default_factory=list)
    refusal_reason: str | None = None
    timings: dict[str, float] = field(default_factory=dict)
    # True when the configured answerer failed and this is the fallback's answer.
    degraded: bool = False
    degraded_reason: str | None = None
    # The answer model's calibrated probability that the passages answer the question.
    answerable_probability: float | None = None
    # In a conversation: the question as searched, with earlier turns' referents made explicit.
    standalone_question: str | None = None
    # Answer sentences that other retrieved sources contradict (a different figure or date).
    conflicts: list[Conflict] = field(default_factory=list)


@dataclass(frozen=True)
class DocumentInfo:
    """A document as the catalogue knows it (no text)."""

    doc_id: str
    collection: str
    title: str
    source_path: str
    content_hash: str
    chunks: int
    publisher: str | None = None
    url: str | None = None
    published: str | None = None
    language: str | None = None
    tags: tuple[str, ...] = ()
    duplicates: tuple[str, ...] = ()
    author: str | None = None
    pages: tuple[PageSpan, ...] = ()


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    documents: int
    chunks: int
    embedder: str
