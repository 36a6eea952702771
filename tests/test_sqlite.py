"""dossier.state.sqlite: WAL files with versioned schemas, written by threads and processes;
the backend-independent ones also over PostgreSQL (``state_url``, tests/conftest.py)."""

from __future__ import annotations

import multiprocessing
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dossier.state import open_state
from dossier.state.sqlite import SQLiteFile, connect

MIGRATIONS = [
    "CREATE TABLE IF NOT EXISTS notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL)",
    "ALTER TABLE notes ADD COLUMN writer TEXT; CREATE INDEX notes_writer ON notes(writer)",
]


def _write(path: Path, writer: str, n: int, url: str | None = None) -> None:
    db = open_state("notes", MIGRATIONS, path, url)
    for i in range(n):
        with db.transaction() as conn:
            # Read, then write in one transaction: the pattern a cap check uses.
            count = conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0]
            conn.execute("INSERT INTO notes (body, writer) VALUES (?, ?)", (f"{count}-{i}", writer))


def test_connect_is_wal_with_named_columns(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "x.sqlite3"
    conn = connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1
    finally:
        conn.close()


def test_migrations_upgrade_an_unversioned_file_and_keep_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as old:  # a file written before schemas were versioned
        old.execute(MIGRATIONS[0])
        old.execute("INSERT INTO notes (body) VALUES ('kept')")
    old.close()
    db = SQLiteFile(path, MIGRATIONS)
    with db.transaction() as conn:
        conn.execute("INSERT INTO notes (body, writer) VALUES ('new', 'w')")
    with db.transaction(write=False) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
        rows = conn.execute("SELECT body, writer FROM notes ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("kept", None), ("new", "w")]


def test_a_newer_file_is_not_downgraded(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    with SQLiteFile(path, MIGRATIONS).transaction():
        pass
    with SQLiteFile(path, MIGRATIONS[:1]).transaction(write=False) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_failed_block_rolls_back(tmp_path: Path, state_url: str | None) -> None:
    db = open_state("notes", MIGRATIONS, tmp_path / "x.sqlite3", state_url)
    with pytest.raises(RuntimeError), db.transaction() as conn:
        conn.execute("INSERT INTO notes (body) VALUES ('lost')")
        raise RuntimeError("boom")
    with db.transaction(write=False) as conn:
        assert conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0


def test_threads_and_processes_write_at_once_without_losing_a_row(
    tmp_path: Path, state_url: str | None
) -> None:
    path = tmp_path / "shared.sqlite3"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_write, args=(path, f"p{i}", 40, state_url)) for i in range(3)]
    for p in procs:
        p.start()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda i: _write(path, f"t{i}", 40, state_url), range(4)))
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    with open_state("notes", MIGRATIONS, path, state_url).transaction(write=False) as conn:
        counts = dict(conn.execute("SELECT writer, COUNT(*) FROM notes GROUP BY writer").fetchall())
        bodies = [r[0] for r in conn.execute("SELECT body FROM notes ORDER BY id").fetchall()]
    assert counts == {**{f"p{i}": 40 for i in range(3)}, **{f"t{i}": 40 for i in range(4)}}
    # Each writer saw every earlier row: the count it read is the rows before its own.
    assert [int(b.split("-")[0]) for b in bodies] == list(range(len(bodies)))
