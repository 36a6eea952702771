"""Read article files into raw text and metadata: which reader, within which limits.

The readers themselves (plain text and Markdown, web pages, PDF, Word) live in
``ingest.readers``, one module a format.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from dossier.errors import FileTooLarge, UnsupportedDocument
from ingest.readers import READERS, SUPPORTED, Reader
from ingest.readers.base import RawArticle, check_text, decode, short_title

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 5_000_000

__all__ = [
    "DEFAULT_MAX_BYTES",
    "SUPPORTED",
    "Discovery",
    "RawArticle",
    "check_text",
    "decode",
    "discover",
    "load",
    "parse",
    "read_limited",
    "reader_for",
    "short_title",
]


def reader_for(name: str | Path) -> Reader:
    """The reader of a file's type, or UnsupportedDocument naming the types there are."""
    suffix = Path(name).suffix
    reader = READERS.get(suffix.lower())
    if reader is None:
        raise UnsupportedDocument(
            f"{name}: unsupported file type {suffix!r}; use one of {', '.join(sorted(SUPPORTED))}."
        )
    return reader


def parse(name: str, data: bytes, max_bytes: int = DEFAULT_MAX_BYTES) -> RawArticle:
    """An article from a file's name and bytes: what the CLI, uploads and URLs share.

    ``max_bytes`` is the per-file limit; a Word file's unpacked size is checked against it.
    """
    return reader_for(name)(Path(name), data, max_bytes)


def read_limited(path: Path, max_bytes: int) -> bytes:
    """The file's bytes, or FileTooLarge without reading more than ``max_bytes + 1`` of them."""
    size = path.stat().st_size
    if size > max_bytes:
        raise FileTooLarge(path, size, max_bytes)
    with path.open("rb") as fh:
        data = fh.read(max_bytes + 1)  # the file may have grown since stat()
    if len(data) > max_bytes:
        raise FileTooLarge(path, len(data), max_bytes)
    return data


def load(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> RawArticle:
    reader = reader_for(path)  # an unsupported type is refused before anything is read
    return reader(path, read_limited(path, max_bytes), max_bytes)


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def _is_article(name: str) -> bool:
    return (
        Path(name).suffix.lower() in SUPPORTED
        and not name.lower().startswith("readme")
        and not name.startswith(".")
    )


def discover(root: Path) -> Discovery:
    """Article files under ``root``, sorted; READMEs and hidden files are not articles.

    Symlinks are followed only while they stay inside ``root``: a link to
    ``/etc/passwd`` or to a folder elsewhere is reported as skipped, never read.
    """
    found = Discovery()
    if root.is_file():
        found.files.append(root)
        return found
    base = root.resolve()
    seen: set[Path] = set()

    def inside(target: Path) -> bool:
        return target == base or base in target.parents

    def walk(folder: Path) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            found.skipped.append((str(folder), f"cannot list the folder ({exc.strerror})"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = Path(entry.path)
            if entry.is_symlink():
                target = path.resolve()
                if not inside(target):
                    if entry.is_dir() or _is_article(entry.name):
                        found.skipped.append(
                            (str(path), f"symlink to {target}, outside {root}; not followed")
                        )
                    continue
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                real = path.resolve()
                if real not in seen:  # a link loop inside root is walked once
                    seen.add(real)
                    walk(path)
            elif entry.is_file() and _is_article(entry.name):
                found.files.append(path)

    seen.add(base)
    walk(root)
    found.files.sort()
    return found
