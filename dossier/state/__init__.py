"""State beside the index: API keys, feedback, conversations, with versioned schemas.

Two backends behind one interface (:class:`dossier.state.base.StateDB`): SQLite files in
the data directory (the embedded default) and PostgreSQL (``DOSSIER_STATE_URL=
postgresql://…``), which several API hosts can share. :func:`open_state` picks one.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import SecretStr

from dossier.errors import ConfigurationError
from dossier.state.base import StateDB

# URL schemes and the backend each selects; no URL: SQLite in the data directory.
BACKENDS = {"postgresql": "postgres", "postgres": "postgres"}


def open_state(
    store: str,
    migrations: Sequence[str],
    sqlite_path: Path,
    url: SecretStr | str | None = None,
) -> StateDB:
    """The database of one store (``store`` names it: "keys", "feedback", …): the SQLite
    file ``sqlite_path`` when ``url`` is unset, else the database the URL names, where the
    store's schema version is kept in the ``dossier_schema`` table."""
    raw = url.get_secret_value() if isinstance(url, SecretStr) else url
    if not raw:
        from dossier.state.sqlite import SQLiteFile

        return SQLiteFile(sqlite_path, migrations)
    scheme = raw.split("://", 1)[0].lower() if "://" in raw else ""
    if BACKENDS.get(scheme) == "postgres":
        from dossier.state.postgres import PostgresDB

        return PostgresDB(raw, store, migrations)
    # The URL holds a password: name only its scheme.
    raise ConfigurationError(
        f"DOSSIER_STATE_URL has the scheme {scheme or '(none)'!r}; use postgresql://user:"
        "password@host:5432/dbname, or leave it unset for SQLite files in the data directory."
    )
