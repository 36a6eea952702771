"""Stored conversations: the history a client asks the server to keep.

``dossier.conversation`` turns a history into the question that is searched; this module
keeps histories between requests (``POST /v1/conversations``). A conversation is stored
whole, as questions and the answers given with their citations, and belongs to its
owner (the API key that created it, or nobody when the API runs without keys): every
operation takes the owner, and another owner's conversation reads exactly as one that
does not exist, so ids reveal nothing. A conversation holds at most ``max_messages``
messages; only its latest turns are read to answer (``Dossier.chat`` bounds them again).

:class:`ConversationStore` is the interface; :class:`SQLConversationStore` keeps them in
the state database (``dossier.state``): one SQLite file beside the index (WAL, one
connection per thread), which every worker process of ``dossier serve --workers N``
shares, or PostgreSQL (``DOSSIER_STATE_URL``), which several hosts share.
"""

from __future__ import annotations

import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from dossier.chat.condense import Message
from dossier.errors import ConversationFull, ConversationNotFound
from dossier.models import Answer, AnswerSentence, Citation
from dossier.state import open_state
from dossier.state.base import Transaction

StoredRole = Literal["user", "assistant"]


@dataclass(frozen=True)
class TurnAnswer:
    """What an assistant message keeps of its :class:`Answer`: everything a client shows,
    not the retrieved passages or the timings (those are the moment's, and large)."""

    answerer: str
    refused: bool
    sentences: tuple[AnswerSentence, ...] = ()
    citations: tuple[Citation, ...] = ()
    refusal_reason: str | None = None
    standalone_question: str | None = None
    degraded: bool = False
    degraded_reason: str | None = None
    answerable_probability: float | None = None

    @classmethod
    def of(cls, a: Answer) -> TurnAnswer:
        return cls(
            answerer=a.answerer,
            refused=a.refused,
            sentences=tuple(a.sentences),
            citations=tuple(a.citations),
            refusal_reason=a.refusal_reason,
            standalone_question=a.standalone_question,
            degraded=a.degraded,
            degraded_reason=a.degraded_reason,
            answerable_probability=a.answerable_probability,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> TurnAnswer:
        # Fields this version does not know (written by a later one) are left out.
        known = {f.name for f in fields(cls)}
        data: dict[str, Any] = {k: v for k, v in json.loads(text).items() if k in known}
        data["sentences"] = tuple(
            AnswerSentence(**{**s, "citations": tuple(s["citations"])}) for s in data["sentences"]
        )
        data["citations"] = tuple(Citation(**c) for c in data["citations"])
        return cls(**data)


@dataclass(frozen=True)
class StoredMessage:
    id: str
    role: StoredRole
    content: str  # the question, or the answer text with its [n] markers (or the refusal)
    created: str
    answer: TurnAnswer | None = None  # on assistant messages

    def to_message(self) -> Message:
        return Message(self.role, self.content)


@dataclass(frozen=True)
class Conversation:
    id: str
    owner: str | None  # the API key's id; None when the API runs without keys
    collection: str
    title: str | None
    created: str
    updated: str
    message_count: int
    # Oldest first: all of them from ``get``, the latest ``last`` from ``get(last=…)``,
    # none from ``recent``.
    messages: tuple[StoredMessage, ...] = ()

    def chat_messages(self, question: str) -> list[Message]:
        """The history read so far plus the new question, oldest first, for ``Dossier.chat``
        (which keeps the latest turns of it, never the first)."""
        return [*(m.to_message() for m in self.messages), Message("user", question)]

    def check_room(self, limit: int, adding: int = 2) -> None:
        """ConversationFull when ``adding`` more messages would pass ``limit``."""
        if self.message_count + adding > limit:
            raise ConversationFull(self.id, limit)


class ConversationStore(ABC):
    """Where conversations live. Every method takes the caller's ``owner`` and raises
    :class:`ConversationNotFound` for an id that is unknown, deleted, or someone else's."""

    @abstractmethod
    def create(self, owner: str | None, collection: str, title: str | None = None) -> Conversation:
        """A new, empty conversation."""

    @abstractmethod
    def get(self, conversation_id: str, owner: str | None, last: int | None = None) -> Conversation:
        """The conversation with its messages, oldest first; only the latest ``last`` when
        given (``message_count`` still counts them all)."""

    @abstractmethod
    def recent(
        self, owner: str | None, limit: int = 20, before: str | None = None
    ) -> list[Conversation]:
        """The owner's conversations without their messages, newest first; ``before``
        (a conversation id) continues after that conversation, for paging."""

    @abstractmethod
    def add_turn(
        self,
        conversation_id: str,
        owner: str | None,
        question: str,
        answer: Answer,
        max_messages: int,
    ) -> tuple[StoredMessage, StoredMessage]:
        """Store a question and its answer together (one transaction, so a failed answer
        leaves no question without its reply); ConversationFull past ``max_messages``.
        An untitled conversation takes its first question as its title."""

    @abstractmethod
    def delete(self, conversation_id: str, owner: str | None) -> None:
        """Remove the conversation and its messages."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


TITLE_CHARS = 120

_MIGRATIONS = [
    # v1. `seq` orders (newest first, paging); `id` is what clients see. `owner IS ?`
    # matches NULL (no keys) as well as a key id.
    """
    CREATE TABLE conversations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        owner TEXT,
        collection TEXT NOT NULL,
        title TEXT,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        message_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX conversations_by_owner ON conversations (owner, seq);
    CREATE TABLE messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        conversation INTEGER NOT NULL REFERENCES conversations (seq) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
        content TEXT NOT NULL,
        created TEXT NOT NULL,
        answer TEXT
    );
    CREATE INDEX messages_by_conversation ON messages (conversation, seq)
    """,
]

_CONVERSATION_COLUMNS = "seq, id, owner, collection, title, created, updated, message_count"


def _conversation(row: Any, messages: Sequence[StoredMessage] = ()) -> Conversation:
    return Conversation(
        id=row["id"],
        owner=row["owner"],
        collection=row["collection"],
        title=row["title"],
        created=row["created"],
        updated=row["updated"],
        message_count=row["message_count"],
        messages=tuple(messages),
    )


def _message(row: Any) -> StoredMessage:
    answer = row["answer"]
    return StoredMessage(
        id=row["id"],
        role=row["role"],
        content=row["content"],
        created=row["created"],
        answer=TurnAnswer.from_json(answer) if answer is not None else None,
    )


class SQLConversationStore(ConversationStore):
    """Conversations in the SQLite file ``path``, or the PostgreSQL database of ``state_url``."""

    def __init__(self, path: Path, state_url: SecretStr | str | None = None) -> None:
        self.path = path
        self.db = open_state("conversations", _MIGRATIONS, path, state_url)

    @staticmethod
    def _row(conn: Transaction, conversation_id: str, owner: str | None) -> Any:
        row: Any = conn.execute(
            f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE id = ? AND owner IS ?",
            (conversation_id, owner),
        ).fetchone()
        if row is None:
            raise ConversationNotFound(conversation_id)
        return row

    def create(self, owner: str | None, collection: str, title: str | None = None) -> Conversation:
        conversation_id = "conv_" + secrets.token_hex(12)
        now = _now()
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO conversations (id, owner, collection, title, created, updated)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (conversation_id, owner, collection, title, now, now),
            )
            row = self._row(conn, conversation_id, owner)
        return _conversation(row)

    def get(self, conversation_id: str, owner: str | None, last: int | None = None) -> Conversation:
        with self.db.transaction(write=False) as conn:
            row = self._row(conn, conversation_id, owner)
            # The latest `last` (all when None), read newest first and turned back around.
            sql = "SELECT id, role, content, created, answer FROM messages WHERE conversation = ?"
            args: tuple[object, ...] = (row["seq"],)
            if last is not None:
                sql, args = sql + " ORDER BY seq DESC LIMIT ?", (*args, max(last, 0))
            else:
                sql += " ORDER BY seq DESC"
            rows = conn.execute(sql, args).fetchall()
        return _conversation(row, [_message(r) for r in reversed(rows)])

    def recent(
        self, owner: str | None, limit: int = 20, before: str | None = None
    ) -> list[Conversation]:
        with self.db.transaction(write=False) as conn:
            sql = f"SELECT {_CONVERSATION_COLUMNS} FROM conversations WHERE owner IS ?"
            args: tuple[object, ...] = (owner,)
            if before:
                sql, args = sql + " AND seq < ?", (*args, self._row(conn, before, owner)["seq"])
            rows = conn.execute(sql + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [_conversation(r) for r in rows]

    def add_turn(
        self,
        conversation_id: str,
        owner: str | None,
        question: str,
        answer: Answer,
        max_messages: int,
    ) -> tuple[StoredMessage, StoredMessage]:
        now = _now()
        asked = StoredMessage("msg_" + secrets.token_hex(8), "user", question, now)
        answered = StoredMessage(
            "msg_" + secrets.token_hex(8), "assistant", answer.text, now, TurnAnswer.of(answer)
        )
        # The write lock is taken first, so the count checked is the count written to.
        with self.db.transaction() as conn:
            row = self._row(conn, conversation_id, owner)
            _conversation(row).check_room(max_messages)
            for m in (asked, answered):
                conn.execute(
                    "INSERT INTO messages (id, conversation, role, content, created, answer)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        m.id,
                        row["seq"],
                        m.role,
                        m.content,
                        m.created,
                        m.answer.to_json() if m.answer else None,
                    ),
                )
            conn.execute(
                "UPDATE conversations SET message_count = message_count + 2, updated = ?,"
                " title = COALESCE(title, ?) WHERE seq = ?",
                (now, question[:TITLE_CHARS], row["seq"]),
            )
        return asked, answered

    def delete(self, conversation_id: str, owner: str | None) -> None:
        with self.db.transaction() as conn:
            row = self._row(conn, conversation_id, owner)
            # Explicit rather than trusting ON DELETE CASCADE alone, which needs the
            # foreign_keys pragma on every connection that ever deletes.
            conn.execute("DELETE FROM messages WHERE conversation = ?", (row["seq"],))
            conn.execute("DELETE FROM conversations WHERE seq = ?", (row["seq"],))


# The name it had while SQLite was its only backend.
SQLiteConversationStore = SQLConversationStore
