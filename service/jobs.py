"""Ingestion jobs in the state database (SQLite beside the index, or PostgreSQL with
``DOSSIER_STATE_URL``), so that any API host sharing it can report or cancel them.

A job row is written before its work is queued, and the host running it keeps it current:
progress (documents done, chunks embedded) at most a few times a second, and a heartbeat
every ``heartbeat_s`` while it is queued or running. A host is named
``hostname:pid:boot``, the boot a random id per :class:`HostId`, so a restarted process
never passes for the one that died.

A job whose host is gone is *orphaned*: it is marked failed with :data:`ORPHANED` instead
of reading as running for ever. Gone means its heartbeat is older than
``STALE_BEATS × heartbeat_s``; with SQLite (one machine: WAL needs a local file) a job
of a process that no longer exists, or of a boot of this very process that has ended, is
gone at once. Orphans are swept when a host starts and, lazily, whenever a job is read.

Cancelling is a flag in the row (``cancel_requested``), so a DELETE on any host reaches the
worker, which reads it with its heartbeat and between groups of documents. A queued job is
cancelled in the row directly: the worker that dequeues it finds it no longer queued.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import SecretStr

from dossier.errors import JobFinished, JobNotFound
from dossier.state import open_state
from dossier.state.base import Transaction
from dossier.state.sqlite import SQLiteFile

log = logging.getLogger(__name__)

JOBS_FILE = "jobs.sqlite3"
Status = Literal["queued", "running", "done", "failed", "cancelled"]
ACTIVE: tuple[Status, ...] = ("queued", "running")
# Missed heartbeats before a job counts as orphaned: one late beat (a busy host, a slow
# database) must not fail a live job.
STALE_BEATS = 3
KEEP_FINISHED_DAYS = 30
ORPHANED = (
    "the host running it stopped (restart or crash); re-post the batch: documents already "
    "stored are skipped"
)
SHUT_DOWN = (
    "the host running it shut down before it finished; re-post the batch: documents "
    "already stored are skipped"
)

_MIGRATIONS = [
    """
CREATE TABLE IF NOT EXISTS ingest_jobs (
    id TEXT PRIMARY KEY,
    collection TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    processed INTEGER NOT NULL DEFAULT 0,
    chunks_embedded INTEGER NOT NULL DEFAULT 0,
    created TEXT NOT NULL,
    started TEXT,
    finished TEXT,
    error TEXT,
    result TEXT,
    host TEXT NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS ingest_jobs_status ON ingest_jobs (status, host)
"""
]
_COLUMNS = (
    "id, collection, status, total, processed, chunks_embedded, created, started, finished,"
    " error, result, host, heartbeat, cancel_requested"
)
_ACTIVE_SQL = "status IN ('queued', 'running')"


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


# -- who runs a job -------------------------------------------------------------
# The boots alive in this process: several apps in one process (tests, a supervisor) each
# have one, and a job of a boot listed here is never taken as orphaned.
_live_boots: set[str] = set()
_live_lock = threading.Lock()


class HostId:
    """This process's name for the jobs it runs: ``hostname:pid:boot``, live until
    :meth:`release`."""

    def __init__(self) -> None:
        self.boot = secrets.token_hex(4)
        self.value = f"{socket.gethostname()}:{os.getpid()}:{self.boot}"
        with _live_lock:
            _live_boots.add(self.boot)

    def release(self) -> None:
        with _live_lock:
            _live_boots.discard(self.boot)

    def __str__(self) -> str:
        return self.value


def host_state(host: str, same_machine: bool) -> Literal["alive", "gone", "unknown"]:
    """What this process can tell about ``host`` without its heartbeat. ``gone`` needs
    ``same_machine`` (the state is a local SQLite file): elsewhere a host name and pid may
    repeat (containers all run as pid 1), so only the heartbeat decides."""
    parts = host.rsplit(":", 2)
    if len(parts) != 3 or not parts[1].isdigit():
        return "unknown"
    name, pid, boot = parts[0], int(parts[1]), parts[2]
    if name != socket.gethostname():
        return "unknown"
    if pid == os.getpid():
        with _live_lock:
            live = boot in _live_boots
        if live:
            return "alive"
        return "gone" if same_machine else "unknown"
    if not same_machine:
        return "unknown"
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return "gone"
    except PermissionError:  # another user's process: it exists
        return "unknown"
    return "unknown"  # a live pid may be a reused one: the heartbeat decides


# -- the rows -------------------------------------------------------------------
@dataclass(frozen=True)
class JobRecord:
    id: str
    collection: str
    status: Status
    total: int
    processed: int
    chunks_embedded: int
    created: str
    started: str | None
    finished: str | None
    error: str | None
    result: dict[str, Any] | None
    host: str
    heartbeat: float
    cancel_requested: bool

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the pace so far; 0 when done, None before any progress."""
        if self.status == "done":
            return 0.0
        if self.status != "running" or not self.started or not 0 < self.processed < self.total:
            return None
        elapsed = (now or time.time()) - datetime.fromisoformat(self.started).timestamp()
        return round(max(0.0, elapsed) / self.processed * (self.total - self.processed), 1)


def _record(row: Any) -> JobRecord:
    return JobRecord(
        id=row["id"],
        collection=row["collection"],
        status=cast(Status, row["status"]),
        total=int(row["total"]),
        processed=int(row["processed"]),
        chunks_embedded=int(row["chunks_embedded"]),
        created=row["created"],
        started=row["started"],
        finished=row["finished"],
        error=row["error"],
        result=json.loads(row["result"]) if row["result"] else None,
        host=row["host"],
        heartbeat=float(row["heartbeat"]),
        cancel_requested=bool(row["cancel_requested"]),
    )


class JobStore:
    """Ingestion jobs in the state database: the SQLite file ``path``, or the PostgreSQL
    database of ``state_url`` when set (see the module docstring)."""

    def __init__(
        self, path: Path, state_url: SecretStr | str | None = None, heartbeat_s: float = 5.0
    ) -> None:
        self.db = open_state("jobs", _MIGRATIONS, path, state_url)
        self.heartbeat_s = heartbeat_s
        # A local SQLite file means every host using it is on this machine.
        self.same_machine = isinstance(self.db, SQLiteFile)

    @property
    def stale_after_s(self) -> float:
        return STALE_BEATS * self.heartbeat_s

    def _get(self, tx: Transaction, job_id: str) -> JobRecord | None:
        row = tx.execute(f"SELECT {_COLUMNS} FROM ingest_jobs WHERE id = ?", (job_id,)).fetchone()
        return _record(row) if row else None

    def create(self, collection: str, total: int, host: str, now: float | None = None) -> JobRecord:
        """A queued job, stored before its work is handed to a worker."""
        now = time.time() if now is None else now
        job_id = secrets.token_hex(16)
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO ingest_jobs (id, collection, status, total, created, host,"
                " heartbeat) VALUES (?, ?, 'queued', ?, ?, ?, ?)",
                (job_id, collection, total, _iso(now), host, now),
            )
            job = self._get(tx, job_id)
        assert job is not None
        return job

    def get(self, job_id: str) -> JobRecord:
        """The job, an orphan read as failed (and marked so); JobNotFound if unknown."""
        with self.db.transaction(write=False) as tx:
            job = self._get(tx, job_id)
        if job is None:
            raise JobNotFound(job_id)
        if job.active and self._orphaned(job, time.time()):
            self._fail_orphans([job])
            with self.db.transaction(write=False) as tx:
                job = self._get(tx, job_id)
            assert job is not None
        return job

    def start(self, job_id: str, host: str, now: float | None = None) -> bool:
        """Claim a queued job for running; False when it is no longer queued (cancelled,
        or swept as an orphan while it waited)."""
        now = time.time() if now is None else now
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE ingest_jobs SET status = 'running', started = ?, heartbeat = ?,"
                " host = ? WHERE id = ? AND status = 'queued' AND cancel_requested = 0",
                (_iso(now), now, host, job_id),
            )
            return cur.rowcount == 1

    def progress(
        self, job_id: str, host: str, processed: int, chunks_embedded: int
    ) -> Literal["go", "cancel", "lost"]:
        """Record progress (and a heartbeat), and say whether the worker goes on: "cancel"
        when a cancel was requested, "lost" when the job is no longer this host's running
        job (swept as an orphan)."""
        now = time.time()
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE ingest_jobs SET processed = ?, chunks_embedded = ?, heartbeat = ?"
                " WHERE id = ? AND host = ? AND status = 'running'",
                (processed, chunks_embedded, now, job_id, host),
            )
            if cur.rowcount != 1:
                return "lost"
            row = tx.execute(
                "SELECT cancel_requested FROM ingest_jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return "cancel" if row and row[0] else "go"

    def beat(self, host: str) -> set[str]:
        """Refresh the heartbeat of every job this host holds; the ids of those whose
        cancel was requested (another host's DELETE reaches the worker this way)."""
        now = time.time()
        with self.db.transaction() as tx:
            tx.execute(
                f"UPDATE ingest_jobs SET heartbeat = ? WHERE host = ? AND {_ACTIVE_SQL}",
                (now, host),
            )
            rows = tx.execute(
                f"SELECT id FROM ingest_jobs WHERE host = ? AND {_ACTIVE_SQL}"
                " AND cancel_requested = 1",
                (host,),
            ).fetchall()
        return {r[0] for r in rows}

    def finish(
        self,
        job_id: str,
        host: str,
        status: Status,
        processed: int,
        chunks_embedded: int,
        error: str | None = None,
        result: dict[str, Any] | None = None,
    ) -> bool:
        """The final word of the host that ran it. A job swept as an orphan meanwhile keeps
        its failure (False): its reason tells the caller to re-post, which finishes it."""
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE ingest_jobs SET status = ?, processed = ?, chunks_embedded = ?,"
                " error = ?, result = ?, finished = ? WHERE id = ? AND host = ?"
                " AND status = 'running'",
                (
                    status,
                    processed,
                    chunks_embedded,
                    error,
                    json.dumps(result) if result is not None else None,
                    _iso(time.time()),
                    job_id,
                    host,
                ),
            )
            return cur.rowcount == 1

    def cancel(self, job_id: str) -> JobRecord:
        """Cancel a queued job now, or ask its host to stop a running one (it stops at the
        next group of documents); JobFinished when it has already ended."""
        job = self.get(job_id)  # an orphan reads as failed first: nothing to cancel
        with self.db.transaction() as tx:
            found = self._get(tx, job_id)
            if found is None:
                raise JobNotFound(job_id)
            if found.status == "queued":
                tx.execute(
                    "UPDATE ingest_jobs SET status = 'cancelled', cancel_requested = 1,"
                    " finished = ? WHERE id = ?",
                    (_iso(time.time()), job_id),
                )
            elif found.status == "running":
                tx.execute("UPDATE ingest_jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            else:
                raise JobFinished(job_id, found.status)
            job = self._get(tx, job_id) or found
        return job

    def abandon_queued(self, host: str, reason: str) -> int:
        """Fail this host's queued jobs (it is shutting down and will not run them)."""
        with self.db.transaction() as tx:
            cur = tx.execute(
                "UPDATE ingest_jobs SET status = 'failed', error = ?, finished = ?"
                " WHERE host = ? AND status = 'queued'",
                (reason, _iso(time.time()), host),
            )
            return cur.rowcount

    def _orphaned(self, job: JobRecord, now: float) -> bool:
        state = host_state(job.host, self.same_machine)
        if state != "unknown":
            return state == "gone"
        return now - job.heartbeat > self.stale_after_s

    def _fail_orphans(self, jobs: list[JobRecord]) -> int:
        failed = 0
        with self.db.transaction() as tx:
            for job in jobs:
                # Only if nothing moved since it was read: a heartbeat that came in between
                # proves its host alive after all.
                cur = tx.execute(
                    "UPDATE ingest_jobs SET status = 'failed', error = ?, finished = ?"
                    f" WHERE id = ? AND heartbeat = ? AND {_ACTIVE_SQL}",
                    (ORPHANED, _iso(time.time()), job.id, job.heartbeat),
                )
                if cur.rowcount:
                    failed += 1
                    log.warning(
                        "ingest job %s (%s on %s) marked failed: %s",
                        job.id, job.status, job.host, ORPHANED,
                    )  # fmt: skip
        return failed

    def sweep(self) -> int:
        """Mark every orphaned job failed, and forget jobs finished long ago; run when a
        host starts. Returns the number of jobs failed."""
        now = time.time()
        with self.db.transaction(write=False) as tx:
            rows = tx.execute(f"SELECT {_COLUMNS} FROM ingest_jobs WHERE {_ACTIVE_SQL}").fetchall()
        orphans = [job for job in map(_record, rows) if self._orphaned(job, now)]
        failed = self._fail_orphans(orphans) if orphans else 0
        cutoff = _iso(now - timedelta(days=KEEP_FINISHED_DAYS).total_seconds())
        with self.db.transaction() as tx:
            tx.execute(
                f"DELETE FROM ingest_jobs WHERE NOT ({_ACTIVE_SQL}) AND finished < ?", (cutoff,)
            )
        return failed
