"""The state stores' contract, run over every backend (``state_url``: SQLite, PostgreSQL):
API keys, feedback, conversations and ingestion jobs behave the same wherever they are kept."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from dossier.chat.conversations import SQLConversationStore
from dossier.errors import (
    ConfigurationError,
    ConversationFull,
    ConversationNotFound,
    InvalidInput,
    JobFinished,
    JobNotFound,
    NotFound,
)
from dossier.models import Answer, AnswerSentence, Citation
from dossier.state import open_state
from dossier.state.sqlite import SQLiteFile
from service.feedback import FeedbackCreate, FeedbackStore
from service.jobs import ORPHANED, SHUT_DOWN, HostId, JobStore
from service.keys import KeyStore

COLLECTION = "albania-iran"


def _keys(tmp_path: Path, url: str | None) -> KeyStore:
    return KeyStore(tmp_path / "keys.sqlite3", url)


def _answer(question: str, text: str) -> Answer:
    citation = Citation(1, "d1", "d1:0", "Title", "Passage text.", "Passage", 0, 7)
    return Answer(
        question, COLLECTION, text, [AnswerSentence(text, (1,), True, 0.9)], [citation],
        False, "test", answerable_probability=0.8, standalone_question=question,
    )  # fmt: skip


def test_the_backend_follows_the_url(tmp_path: Path, state_url: str | None) -> None:
    db = open_state("x", [], tmp_path / "x.sqlite3", state_url)
    assert isinstance(db, SQLiteFile) == (state_url is None)
    # A secret URL works as well as a plain one, and a URL that names no backend is refused
    # without echoing it (it may hold a password).
    if state_url:
        assert not isinstance(open_state("x", [], tmp_path / "y", SecretStr(state_url)), SQLiteFile)
    with pytest.raises(ConfigurationError) as err:
        open_state("x", [], tmp_path / "x.sqlite3", "mysql://u:hunter2@db/x")
    assert "hunter2" not in str(err.value) and "'mysql'" in str(err.value)


def test_keys_create_verify_revoke(tmp_path: Path, state_url: str | None) -> None:
    keys = _keys(tmp_path, state_url)
    reader, token = keys.create("reader", "b-2,a-1", "read")
    admin, admin_token = keys.create("curator", "*", "admin")
    assert reader.collections == ("a-1", "b-2") and admin.collections == ("*",)

    found = keys.verify(token)
    assert found == reader and found is not None and found.covers("a-1")
    assert not found.covers("c-3") and not found.at_least("write")
    # A wrong secret, an unknown id and a foreign prefix all fail alike.
    assert keys.verify(f"dsk_{reader.id}_" + "y" * 43) is None
    assert keys.verify("dsk_000000000000_" + "x" * 43) is None
    assert keys.verify(token.replace("dsk_", "xyz_", 1)) is None

    assert sorted(k.name for k in keys.list_keys()) == ["curator", "reader"]
    revoked = keys.revoke(reader.id)
    assert revoked.revoked is not None
    assert keys.verify(token) is None and keys.verify(admin_token) == admin
    assert keys.revoke(reader.id).revoked == revoked.revoked  # revoking twice changes nothing
    with pytest.raises(NotFound, match="keys list"):
        keys.revoke("000000000000")
    with pytest.raises(InvalidInput, match="role"):
        keys.create("x", "a", "owner")
    # Another store object on the same database (another worker, another host) sees them.
    assert _keys(tmp_path, state_url).verify(admin_token) == admin


def test_feedback_add_and_list(tmp_path: Path, state_url: str | None) -> None:
    store = FeedbackStore(tmp_path / "feedback.sqlite3", state_url)
    up = store.add(
        FeedbackCreate(
            rating="up", question="Why 50%?", answer="Because.", citations=["d1:0", "d2:1"],
            comment="good", collection=COLLECTION, answerer="extractive",
        )
    )  # fmt: skip
    down = store.add(FeedbackCreate(rating="down", question="q2", answer="", refused=True))
    assert down.id > up.id
    assert store.recent() == [down, up]  # newest first, every field kept
    assert store.recent(rating="up") == [up]
    assert store.recent(limit=1) == [down]
    assert up.citations == ["d1:0", "d2:1"] and down.refused is True and down.comment is None


def test_conversations_create_append_read_delete(tmp_path: Path, state_url: str | None) -> None:
    store = SQLConversationStore(tmp_path / "c.sqlite3", state_url)
    conv = store.create("key1", COLLECTION)
    assert conv.message_count == 0 and conv.title is None and conv.owner == "key1"
    asked, answered = store.add_turn(conv.id, "key1", "First?", _answer("First?", "One [1]."), 10)
    got = store.get(conv.id, "key1")
    assert got.title == "First?" and got.message_count == 2
    assert got.messages == (asked, answered)
    assert got.messages[1].answer is not None
    assert got.messages[1].answer.citations[0].passage_id == "d1:0"
    assert got.messages[1].answer.sentences[0].citations == (1,)
    # Another owner, and nobody (no keys), see no such conversation.
    for other in ("key2", None):
        with pytest.raises(ConversationNotFound):
            store.get(conv.id, other)
        with pytest.raises(ConversationNotFound):
            store.add_turn(conv.id, other, "q", _answer("q", "a"), 10)
        with pytest.raises(ConversationNotFound):
            store.delete(conv.id, other)
    store.delete(conv.id, "key1")
    with pytest.raises(ConversationNotFound):
        store.get(conv.id, "key1")
    assert store.recent("key1") == []


def test_conversations_without_an_owner_and_paging(tmp_path: Path, state_url: str | None) -> None:
    store = SQLConversationStore(tmp_path / "c.sqlite3", state_url)
    mine = [store.create(None, COLLECTION, title=f"t{i}") for i in range(5)]
    store.create("key1", COLLECTION)
    page = store.recent(None, limit=2)
    assert [c.id for c in page] == [mine[4].id, mine[3].id]
    rest = store.recent(None, limit=10, before=page[-1].id)
    assert [c.id for c in rest] == [c.id for c in reversed(mine[:3])]
    with pytest.raises(ConversationNotFound):
        store.recent("key1", before=mine[0].id)  # another owner's id pages nothing


def test_the_store_keeps_the_latest_turns_oldest_first(
    tmp_path: Path, state_url: str | None
) -> None:
    store = SQLConversationStore(tmp_path / "c.sqlite3", state_url)
    conv = store.create("key1", COLLECTION)
    for i in range(5):
        answer = Answer(f"q{i}", COLLECTION, f"a{i}", [], [], False, "test")
        store.add_turn(conv.id, "key1", f"q{i}", answer, max_messages=10)
    latest = store.get(conv.id, "key1", last=4)
    assert latest.message_count == 10
    assert [m.content for m in latest.messages] == ["q3", "a3", "q4", "a4"]
    # What Dossier.chat gets: that history, then the new question, oldest first.
    assert [m.content for m in latest.chat_messages("q5")] == ["q3", "a3", "q4", "a4", "q5"]
    assert store.get(conv.id, "key1", last=0).messages == ()
    assert len(store.get(conv.id, "key1").messages) == 10


def test_the_message_cap_holds_under_concurrent_turns(
    tmp_path: Path, state_url: str | None
) -> None:
    store = SQLConversationStore(tmp_path / "c.sqlite3", state_url)
    conv = store.create("key1", COLLECTION)

    def turn(i: int) -> bool:
        try:
            store.add_turn(conv.id, "key1", f"q{i}", _answer(f"q{i}", f"a{i}"), max_messages=6)
        except ConversationFull:
            return False
        return True

    with ThreadPoolExecutor(6) as pool:
        added = list(pool.map(turn, range(12)))
    assert sum(added) == 3
    got = store.get(conv.id, "key1")
    assert got.message_count == 6 and len(got.messages) == 6
    with pytest.raises(ConversationFull, match="6 messages"):
        store.add_turn(conv.id, "key1", "one more", _answer("x", "y"), max_messages=6)


def _started(store: JobStore, host: str, now: float | None = None) -> str:
    job = store.create(COLLECTION, 5, host, now=now)
    assert store.start(job.id, host, now=now)
    return job.id


def test_jobs_progress_cancel_and_finish(tmp_path: Path, state_url: str | None) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3", state_url)
    host = HostId()
    try:
        job = store.create(COLLECTION, 3, str(host))
        assert (job.status, job.processed, job.host) == ("queued", 0, str(host))
        assert store.start(job.id, str(host)) and not store.start(job.id, str(host))
        assert store.progress(job.id, str(host), 2, 5) == "go"
        # Another host (another store object on the same database) reads and cancels it.
        other = JobStore(tmp_path / "jobs.sqlite3", state_url)
        seen = other.get(job.id)
        assert (seen.status, seen.processed, seen.chunks_embedded) == ("running", 2, 5)
        assert seen.eta_s() is not None
        assert other.cancel(job.id).cancel_requested
        assert store.beat(str(host)) == {job.id}  # the worker hears of it with its heartbeat
        assert store.progress(job.id, str(host), 3, 6) == "cancel"
        assert store.finish(job.id, str(host), "cancelled", 3, 6, result={"added": 3})
        done = other.get(job.id)
        assert (done.status, done.result, done.finished is not None) == (
            "cancelled", {"added": 3}, True,
        )  # fmt: skip
        with pytest.raises(JobFinished, match="already ended"):
            other.cancel(job.id)
        with pytest.raises(JobNotFound):
            other.get("0" * 32)
        # A queued job is cancelled in its row, and its worker then finds nothing to start.
        queued = store.create(COLLECTION, 1, str(host))
        assert other.cancel(queued.id).status == "cancelled"
        assert not store.start(queued.id, str(host))
        waiting = store.create(COLLECTION, 1, str(host))
        assert store.abandon_queued(str(host), SHUT_DOWN) == 1
        assert (store.get(waiting.id).status, store.get(waiting.id).error) == ("failed", SHUT_DOWN)
    finally:
        host.release()


def test_orphaned_jobs_read_as_failed_with_the_reason(
    tmp_path: Path, state_url: str | None
) -> None:
    store = JobStore(tmp_path / "jobs.sqlite3", state_url, heartbeat_s=1.0)
    local = state_url is None
    live, ended = HostId(), HostId()
    ended.release()  # a boot of this process that has stopped (an app shut down)
    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    dead_pid = f"{socket.gethostname()}:{int(exited.stdout)}:0badb007"
    try:
        stale = _started(store, "elsewhere:7:feedface", now=time.time() - 60)
        beating = _started(store, "elsewhere:7:feedface")
        mine = _started(store, str(live))
        gone = _started(store, str(ended))
        killed = _started(store, dead_pid)
        # Stale heartbeats fail everywhere; on SQLite (one machine) so does a job whose
        # process or boot has ended, at once; PostgreSQL hosts may share names and pids.
        assert store.sweep() == (3 if local else 1)
        failed = store.get(stale)
        assert (failed.status, failed.error) == ("failed", ORPHANED) and failed.finished
        assert store.get(beating).status == store.get(mine).status == "running"
        for job_id in (gone, killed):
            assert store.get(job_id).status == ("failed" if local else "running")
        # Read lazily too: the other machine's job goes stale once its beats stop coming.
        impatient = JobStore(tmp_path / "jobs.sqlite3", state_url, heartbeat_s=0.01)
        time.sleep(0.1)
        assert impatient.get(beating).error == ORPHANED
        assert impatient.get(mine).status == "running"  # a live boot of this process
        # The host of a job swept as an orphan no longer writes over the failure.
        assert store.progress(beating, "elsewhere:7:feedface", 1, 1) == "lost"
        assert not store.finish(beating, "elsewhere:7:feedface", "done", 5, 5)
        assert store.get(beating).status == "failed"
    finally:
        live.release()
