"""What every reader shares: the raw article it returns, and the text safety checks."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dossier.errors import UnsupportedDocument

log = logging.getLogger(__name__)


@dataclass
class RawArticle:
    """A file as read: its text and title, the metadata it states, and its pages if paged.

    ``meta`` keys the pipeline reads: title, author, publisher, published (or date), url,
    language, tags. ``pages`` (a PDF's text page by page) replaces ``text`` when set.
    """

    path: Path
    text: str
    title: str
    meta: dict[str, Any] = field(default_factory=dict)
    pages: list[str] | None = None


# A text file has almost no other control characters; random bytes have about 12%.
MAX_CONTROL_RATIO = 0.01
# cp1252 maps almost every byte, so it "decodes" anything: a fallback decode is only
# believed when most characters are ASCII, as in any Western-language article.
MIN_ASCII_RATIO_FALLBACK = 0.7

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\ufffd]")


def _control_ratio(text: str) -> float:
    # Real text has (almost) no matches, so counting them is cheap even on large files.
    return sum(1 for _ in _CONTROL.finditer(text)) / len(text) if text else 0.0


def check_text(text: str, name: Path | str) -> str:
    """``text``, or UnsupportedDocument when it is binary content in disguise."""
    if "\x00" in text:
        raise UnsupportedDocument(f"{name}: binary content (NUL bytes), not a text article.")
    ratio = _control_ratio(text)
    if ratio > MAX_CONTROL_RATIO:
        raise UnsupportedDocument(
            f"{name}: binary content ({ratio:.0%} control characters), not a text article."
        )
    return text


def decode(data: bytes, path: Path | str) -> str:
    """Bytes to text, or UnsupportedDocument when they are not text at all.

    Binary content (NUL bytes, many control characters, or bytes that only the
    everything-goes cp1252 fallback accepts) is rejected, never indexed as garbage.
    """
    if b"\x00" in data:
        raise UnsupportedDocument(f"{path}: binary content (NUL bytes), not a text article.")
    try:
        text = data.decode("utf-8-sig")
        fallback = False
    except UnicodeDecodeError:
        try:
            # Older news dumps are often Windows-1252; strict, so its five undefined
            # bytes (common in random data) make the guess fail instead of pass.
            text = data.decode("cp1252")
        except UnicodeDecodeError:
            raise UnsupportedDocument(
                f"{path}: binary content (neither UTF-8 nor Windows-1252 text)."
            ) from None
        fallback = True
    check_text(text, path)
    if fallback:
        ascii_ratio = len(text.encode("ascii", "ignore")) / max(1, len(text))
        if ascii_ratio < MIN_ASCII_RATIO_FALLBACK:
            raise UnsupportedDocument(
                f"{path}: binary content (not UTF-8, and only {ascii_ratio:.0%} ASCII as "
                "Windows-1252); save it as UTF-8 if it is text."
            )
        # We guessed, so we say that we guessed.
        log.warning("%s is not valid UTF-8; decoded as cp1252", path)
    return text


# Every passage carries its document's title, and the title is embedded with each one,
# so a file whose "first line" is megabytes long must not make that line its title.
MAX_TITLE_CHARS = 300


def short_title(title: str) -> str:
    """``title`` cut at a word boundary to at most MAX_TITLE_CHARS characters."""
    if len(title) <= MAX_TITLE_CHARS:
        return title
    cut = title.rfind(" ", 0, MAX_TITLE_CHARS)
    return title[: cut if cut > MAX_TITLE_CHARS // 2 else MAX_TITLE_CHARS]


def first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return short_title(line.strip().lstrip("#").strip())
    return ""


def iso_date(value: object) -> str | None:
    """A date or datetime as ISO ``YYYY-MM-DD``; None when there is none."""
    if value is None:
        return None
    iso = getattr(value, "isoformat", None)
    text = str(iso() if callable(iso) else value).strip()
    match = re.match(r"\d{4}-\d{2}-\d{2}", text)
    return match.group(0) if match else (text or None)
