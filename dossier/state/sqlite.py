"""The one way Dossier opens its small read-write SQLite files (keys, feedback, conversations).

Requests run on a thread pool and ``dossier serve --workers N`` runs N processes on the
same files, so each thread has its own connection (sqlite3 connections must not cross
threads), kept open for the thread's next operation: in WAL mode the last connection
to close checkpoints and deletes the WAL files, which made open-per-operation cost ~0.3
ms more per request (the API key check runs on every request). Each file is in WAL mode,
so readers never wait for a writer; writers wait up to ``busy_timeout_s`` for each other
instead of failing with "database is locked". WAL needs a local file system: SQLite's
locks do not work over most network file systems.

Schemas are versioned with SQLite's ``user_version``: a store passes its migrations in
order, and :meth:`SQLiteFile.transaction` applies the ones the file lacks, once, under a
write lock, so two processes starting together do not both apply them.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

BUSY_TIMEOUT_S = 10.0


def connect(path: Path, busy_timeout_s: float = BUSY_TIMEOUT_S) -> sqlite3.Connection:
    """A connection to ``path`` (created with its folder if missing): WAL, busy timeout,
    rows addressable by column name, foreign keys on, and no implicit transactions
    (``isolation_level=None``), so each store says where its transactions begin."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None)
    try:
        conn.row_factory = sqlite3.Row
        # Persistent in the file; on a file already in WAL mode this is a cheap no-op.
        conn.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL loses no data on a process crash, only on power loss, and
        # saves an fsync per commit.
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> int:
    """Bring the file's schema to ``len(migrations)``; returns the version it had.

    Migration ``i`` (0-based) takes the file from ``user_version`` i to i + 1. A file
    newer than this code (a later Dossier wrote it) is left alone: reading it may still
    work, and a downgrade must not rewrite it.
    """
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    if version >= len(migrations):
        return version
    conn.execute("BEGIN IMMEDIATE")  # the write lock first: another process may be here too
    try:
        start: int = conn.execute("PRAGMA user_version").fetchone()[0]
        for i in range(start, len(migrations)):
            for statement in statements(migrations[i]):
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {len(migrations):d}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return version


def statements(script: str) -> list[str]:
    # executescript() would COMMIT the open transaction first, so each statement runs on
    # its own; the schemas here have no triggers or literals holding a ';'.
    return [s.strip() for s in script.split(";") if s.strip()]


class SQLiteFile:
    """A versioned SQLite file with one connection per thread (see the module docstring)."""

    def __init__(self, path: Path, migrations: Sequence[str]) -> None:
        self.path = path
        self.migrations = tuple(migrations)
        self._ready = False
        self._lock = threading.Lock()
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "conn", None)
        # A connection must not cross a fork either: a child process opens its own.
        if held is not None and held[0] == os.getpid():
            return held[1]
        conn = connect(self.path)
        try:
            with self._lock:
                if not self._ready:
                    migrate(conn, self.migrations)
                    self._ready = True
        except BaseException:
            conn.close()
            raise
        # Closed when the thread ends and its locals are collected.
        self._local.conn = (os.getpid(), conn)
        return conn

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        """This thread's connection in one transaction: committed when the block ends,
        rolled back when it raises. ``write`` takes the write lock at the start (``BEGIN
        IMMEDIATE``), so a read-then-write block cannot fail half-way on another writer's
        lock; ``write=False`` reads one consistent snapshot."""
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
