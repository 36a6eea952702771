"""API keys: high-entropy tokens shown once, stored only as hashes (SQLite beside the index, or
PostgreSQL with ``DOSSIER_STATE_URL``).

A token is ``dsk_<id>_<secret>``. The id (not secret) finds the row; the secret's SHA-256
is compared with ``hmac.compare_digest``. An unknown id is compared against a dummy hash,
so a wrong key and a key with a right id but wrong secret cost the same work. A fast hash
is enough here: the secret has 256 bits of entropy, so there is nothing to brute-force.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import SecretStr

from dossier.errors import InvalidInput, NotFound
from dossier.index.store import validate_collection_name
from dossier.state import open_state

KEYS_FILE = "keys.sqlite3"
PREFIX = "dsk"
Role = Literal["read", "write", "admin"]
ROLES: tuple[Role, ...] = ("read", "write", "admin")
ALL = "*"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    secret_sha256 TEXT NOT NULL,
    role TEXT NOT NULL,
    collections TEXT NOT NULL,
    created TEXT NOT NULL,
    revoked TEXT
)
"""
_DUMMY_HASH = hashlib.sha256(b"no such key").hexdigest()


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: Role
    collections: tuple[str, ...]  # ("*",) means every collection, present and future
    created: str
    revoked: str | None = None

    def at_least(self, role: Role) -> bool:
        return ROLES.index(self.role) >= ROLES.index(role)

    def covers(self, collection: str) -> bool:
        return ALL in self.collections or collection in self.collections


def parse_collections(spec: str | Sequence[str]) -> tuple[str, ...]:
    """``"a,b"``, ``"*"`` or a list of names: the scope of a key, validated."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = tuple(sorted({s.strip() for s in items if s.strip()}))
    if not names:
        raise InvalidInput("A key needs at least one collection, or '*' for all of them.")
    if ALL in names:
        return (ALL,)
    for name in names:
        validate_collection_name(name)
    return names


class KeyStore:
    """Keys in the state database (``dossier.state``): the SQLite file ``path``, or the
    PostgreSQL database of ``state_url`` when set."""

    def __init__(self, path: Path, state_url: SecretStr | str | None = None) -> None:
        self.path = path
        self.db = open_state("keys", [_SCHEMA], path, state_url)

    def create(self, name: str, collections: str | Sequence[str], role: str) -> tuple[ApiKey, str]:
        """The new key and its token; the token is not stored and cannot be shown again."""
        name = name.strip()
        if not name or len(name) > 100:
            raise InvalidInput("A key needs a name of 1-100 characters, e.g. --name reporting-app.")
        if role not in ROLES:
            raise InvalidInput(f"Unknown role {role!r}; use one of {', '.join(ROLES)}.")
        scope = parse_collections(collections)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO api_keys (id, name, secret_sha256, role, collections, created)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (key_id, name, _hash(secret), role, json.dumps(scope), created),
            )
        key = ApiKey(key_id, name, role, scope, created)
        return key, f"{PREFIX}_{key_id}_{secret}"

    def list_keys(self) -> list[ApiKey]:
        with self.db.transaction(write=False) as conn:
            rows = conn.execute(
                "SELECT id, name, role, collections, created, revoked FROM api_keys"
                " ORDER BY created, id"
            ).fetchall()
        return [ApiKey(r[0], r[1], r[2], tuple(json.loads(r[3])), r[4], r[5]) for r in rows]

    def revoke(self, key_id: str) -> ApiKey:
        revoked = datetime.now(UTC).isoformat(timespec="seconds")
        with self.db.transaction() as conn:
            cur = conn.execute(
                "UPDATE api_keys SET revoked = ? WHERE id = ? AND revoked IS NULL",
                (revoked, key_id),
            )
            if (
                cur.rowcount == 0
                and not conn.execute("SELECT 1 FROM api_keys WHERE id = ?", (key_id,)).fetchone()
            ):
                raise NotFound(f"No API key with id {key_id!r}; `dossier keys list` shows them.")
        return next(k for k in self.list_keys() if k.id == key_id)

    def verify(self, token: str) -> ApiKey | None:
        """The live key this token belongs to, or None; same work for every wrong token."""
        prefix, _, rest = token.partition("_")
        key_id, _, secret = rest.partition("_")
        with self.db.transaction(write=False) as conn:
            row = conn.execute(
                "SELECT id, name, role, collections, created, revoked, secret_sha256"
                " FROM api_keys WHERE id = ?",
                (key_id,),
            ).fetchone()
        stored = row[6] if row else _DUMMY_HASH
        matches = hmac.compare_digest(_hash(secret), stored)
        if not (matches and row and prefix == PREFIX) or row[5] is not None:
            return None
        return ApiKey(row[0], row[1], row[2], tuple(json.loads(row[3])), row[4], row[5])
