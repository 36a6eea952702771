"""Metadata filters on retrieval: only some documents, a publication date range, a publisher.

A :class:`PassageFilter` is applied *inside* each ranking, never to a finished top k (which
would leave fewer than k passages when the best ones are filtered out):

* the store's vector query (Chroma: a ``where`` clause; the memory store: in Python);
* BM25, as a weight mask over the index's positions before the top k is taken
  (:class:`FilterColumns` holds the three metadata columns a mask is computed from).

Dates are compared as days, ``YYYYMMDD`` integers, because Chroma's ``$gte``/``$lte`` work
only on numbers: every backend stores :func:`published_day` of a passage's ``published``
string with the passage (Chroma: the ``published_day`` metadata key). Publishers match
exactly after case folding and trimming (``publisher_key``), so "BBC News" matches
"bbc news". A passage without a readable date never matches a date bound.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np

from dossier.errors import InvalidInput
from dossier.models import Passage

log = logging.getLogger(__name__)

# The metadata keys a store writes beside each passage for filtering (see the module doc).
DAY_KEY = "published_day"
PUBLISHER_KEY = "publisher_key"
# Bump when what is stored for filtering changes: the ingest pipeline puts it into every
# content hash, so the next ingest rewrites passages stored without these keys.
METADATA_VERSION = "filters-1"

_ISO_DAY = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})")


def day_number(d: date) -> int:
    """A date as the integer ``YYYYMMDD``: orders like the date, and reads like it in a store."""
    return d.year * 10_000 + d.month * 100 + d.day


def published_day(published: str | None) -> int | None:
    """The ``YYYYMMDD`` day of a ``published`` string, or None when it names no day.

    Accepts ISO dates and datetimes (``2022-09-07``, ``2022-09-07T10:30:00Z``: the date as
    written, no time-zone shift). Anything else (a year alone, "last Tuesday") is undated,
    so a date filter excludes it rather than guessing.
    """
    if not published:
        return None
    m = _ISO_DAY.match(published)
    if m is None:
        return None
    try:
        return day_number(date(int(m[1]), int(m[2]), int(m[3])))
    except ValueError:  # 2022-02-30: not a day
        log.debug("unreadable published date %r: treated as undated", published)
        return None


def publisher_key(publisher: str | None) -> str | None:
    """How publishers are compared: case-folded and trimmed; None for none or blank."""
    if publisher is None:
        return None
    key = publisher.strip().casefold()
    return key or None


@dataclass(frozen=True)
class PassageFilter:
    """Which passages a retrieval may return; a None field does not restrict.

    ``published_after`` and ``published_before`` are inclusive. ``doc_ids`` is a set of
    document ids (order is irrelevant); an empty tuple is refused, as it could only ever
    match nothing.
    """

    doc_ids: tuple[str, ...] | None = None
    published_after: date | None = None
    published_before: date | None = None
    publisher: str | None = None

    def __post_init__(self) -> None:
        # Also checked by the HTTP schema (a 422 there); here for the CLI and library users.
        if self.doc_ids is not None and not self.doc_ids:
            raise InvalidInput("filters.doc_ids is empty; leave it out to search every document.")
        if (
            self.published_after is not None
            and self.published_before is not None
            and self.published_after > self.published_before
        ):
            raise InvalidInput(
                f"filters.published_after ({self.published_after.isoformat()}) is after "
                f"filters.published_before ({self.published_before.isoformat()}); no date "
                "is in that range."
            )
        if self.publisher is not None and publisher_key(self.publisher) is None:
            raise InvalidInput("filters.publisher is blank; leave it out or name a publisher.")

    @property
    def is_empty(self) -> bool:
        """True when nothing is restricted: retrieval then runs unfiltered."""
        return (
            self.doc_ids is None
            and self.published_after is None
            and self.published_before is None
            and self.publisher is None
        )

    @property
    def dated(self) -> bool:
        return self.published_after is not None or self.published_before is not None

    @property
    def day_range(self) -> tuple[int | None, int | None]:
        lo, hi = self.published_after, self.published_before
        return (None if lo is None else day_number(lo), None if hi is None else day_number(hi))

    def matches(self, passage: Passage) -> bool:
        """One passage against the filter: the same rule :meth:`mask` applies to an index."""
        return bool(self.mask(FilterColumns.of_passages([passage]))[0])

    def mask(self, columns: FilterColumns) -> np.ndarray:
        """A boolean array over an index's positions: True where the passage matches."""
        keep = np.ones(len(columns), dtype=bool)
        if self.doc_ids is not None:
            keep &= np.isin(columns.doc_ids, np.array(self.doc_ids, dtype=object))
        if self.publisher is not None:
            keep &= columns.publishers == publisher_key(self.publisher)
        if self.dated:
            lo, hi = self.day_range
            keep &= columns.days > 0  # 0: undated, never in a date range
            if lo is not None:
                keep &= columns.days >= lo
            if hi is not None:
                keep &= columns.days <= hi
        return keep

    def describe(self) -> str:
        """The filter in words, for refusal reasons and logs."""
        parts = []
        if self.doc_ids is not None:
            parts.append(f"doc_ids in {list(self.doc_ids)}")
        if self.published_after is not None:
            parts.append(f"published on or after {self.published_after.isoformat()}")
        if self.published_before is not None:
            parts.append(f"published on or before {self.published_before.isoformat()}")
        if self.publisher is not None:
            parts.append(f"publisher {self.publisher!r}")
        return ", ".join(parts) or "no filter"


def active(filters: PassageFilter | None) -> PassageFilter | None:
    """``filters`` when it restricts anything, else None (so the unfiltered path runs)."""
    return None if filters is None or filters.is_empty else filters


@dataclass(frozen=True)
class FilterColumns:
    """An index's filterable metadata, one entry per position, for computing masks fast."""

    doc_ids: np.ndarray  # object (str)
    publishers: np.ndarray  # object: publisher_key, "" for none
    days: np.ndarray  # int64: published_day, 0 for undated

    def __len__(self) -> int:
        return len(self.days)

    @classmethod
    def of(cls, rows: Iterable[tuple[str, str | None, str | None]]) -> FilterColumns:
        """From (doc_id, publisher, published) rows in index order."""
        doc_ids: list[str] = []
        publishers: list[str] = []
        days: list[int] = []
        for doc_id, publisher, published in rows:
            doc_ids.append(doc_id)
            publishers.append(publisher_key(publisher) or "")
            days.append(published_day(published) or 0)
        return cls(
            doc_ids=np.array(doc_ids, dtype=object),
            publishers=np.array(publishers, dtype=object),
            days=np.array(days, dtype=np.int64),
        )

    @classmethod
    def of_passages(cls, passages: Iterable[Passage]) -> FilterColumns:
        return cls.of((p.doc_id, p.publisher, p.published) for p in passages)
