"""Thumbs up/down on answers, kept for curators to review: in a SQLite file beside the index,
or in PostgreSQL with ``DOSSIER_STATE_URL``."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, SecretStr, StrictBool

from dossier.errors import CollectionNotFound
from dossier.state import open_state
from service.auth import PrincipalDep
from service.errors import errors_doc

FEEDBACK_FILE = "feedback.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created TEXT NOT NULL,
    rating TEXT NOT NULL,
    comment TEXT,
    question TEXT NOT NULL,
    collection TEXT,
    answer TEXT NOT NULL,
    answerer TEXT,
    refused INTEGER NOT NULL,
    citations TEXT NOT NULL
)
"""


class FeedbackCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    comment: str | None = Field(default=None, max_length=4000)
    question: str = Field(min_length=1, max_length=4000)
    collection: str | None = None
    answer: str = Field(max_length=20000, description="The answer text that was rated.")
    answerer: str | None = None
    refused: StrictBool = False
    citations: list[str] = Field(
        default_factory=list, description="passage_ids of the answer's citations, in order."
    )


class FeedbackPublic(FeedbackCreate):
    id: int
    created: str


class FeedbackStore:
    """Feedback in the state database (``dossier.state``): the SQLite file ``path``, or the
    PostgreSQL database of ``state_url`` when set."""

    def __init__(self, path: Path, state_url: SecretStr | str | None = None) -> None:
        self.path = path
        self.db = open_state("feedback", [_SCHEMA], path, state_url)

    def add(self, item: FeedbackCreate) -> FeedbackPublic:
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self.db.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO feedback (created, rating, comment, question, collection, answer,"
                " answerer, refused, citations) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    created,
                    item.rating,
                    item.comment or None,
                    item.question,
                    item.collection,
                    item.answer,
                    item.answerer,
                    int(item.refused),
                    json.dumps(item.citations),
                ),
            )
            row_id: int = cur.fetchone()[0]
        return FeedbackPublic(id=row_id, created=created, **item.model_dump())

    def recent(self, limit: int = 100, rating: str | None = None) -> list[FeedbackPublic]:
        sql = (
            "SELECT id, created, rating, comment, question, collection, answer, answerer,"
            " refused, citations FROM feedback"
        )
        args: tuple[object, ...] = ()
        if rating:
            sql += " WHERE rating = ?"
            args = (rating,)
        sql += " ORDER BY id DESC LIMIT ?"
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(sql, (*args, limit)).fetchall()
        keys = ("id", "created", "rating", "comment", "question", "collection", "answer")
        return [
            FeedbackPublic(
                **dict(zip(keys, r[:7], strict=True)),
                answerer=r[7],
                refused=bool(r[8]),
                citations=json.loads(r[9]),
            )
            for r in rows
        ]


def feedback_store(request: Request) -> FeedbackStore:
    store: FeedbackStore = request.app.state.feedback
    return store


def install(app: FastAPI, data_dir: Path, state_url: SecretStr | None = None) -> None:
    """Attach the store and the routes; the file sits beside the index so backups keep both."""
    app.state.feedback = FeedbackStore(data_dir / FEEDBACK_FILE, state_url)
    app.include_router(router)


router = APIRouter(prefix="/v1", tags=["feedback"])


@router.post(
    "/feedback",
    status_code=201,
    summary="Record thumbs up/down on an answer",
    responses=errors_doc(404),
)
def post_feedback(
    body: FeedbackCreate, request: Request, principal: PrincipalDep
) -> FeedbackPublic:
    if body.collection is not None and not principal.covers(body.collection):
        raise CollectionNotFound(body.collection)
    return feedback_store(request).add(body)


@router.get(
    "/feedback",
    summary="Recorded feedback, newest first, for curators (admin keys)",
    responses=errors_doc(403),
)
def get_feedback(
    request: Request,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    rating: Literal["up", "down"] | None = None,
) -> list[FeedbackPublic]:
    # Comments are other users' words: only curators (admin keys) read them.
    principal.require("admin")
    return feedback_store(request).recent(limit, rating)
