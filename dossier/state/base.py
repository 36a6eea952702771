"""The state-store interface every backend provides (``dossier.state.sqlite``, ``.postgres``).

Stores (API keys, feedback, conversations) write one SQL text for every backend, in the
SQLite dialect with ``?`` placeholders; a backend that speaks another dialect translates
what little differs (see ``dossier.state.postgres``). A store only ever calls
:meth:`StateDB.transaction` and, inside it, :meth:`Transaction.execute`.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol


class Cursor(Protocol):
    """What ``execute`` returns: rows addressable by position and by column name."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Transaction(Protocol):
    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...


class StateDB(Protocol):
    """A versioned schema (its migrations, applied once on first use) in some database."""

    def transaction(self, write: bool = True) -> AbstractContextManager[Transaction]:
        """One transaction, committed when the block ends, rolled back when it raises.
        ``write`` serialises the block with every other writer of the same store, so a
        read-then-write block (a cap check) sees the rows it writes after;
        ``write=False`` reads one consistent snapshot."""
        ...
