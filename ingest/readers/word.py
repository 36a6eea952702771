"""Word documents (.docx) through python-docx: paragraphs, headings and tables in order.

A .docx is a zip archive, so its size on disk says little about what it unpacks to:
the archive's own directory is checked against limits before anything is inflated
(a zip bomb is refused without being opened).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

from dossier.errors import UnsupportedDocument
from ingest.readers.base import RawArticle, first_line, iso_date

# Unpacked, a Word file may be this many times the per-file limit (text compresses
# about 5-10x; images in a .docx are stored already compressed).
MAX_UNPACKED_FACTOR = 20
# Any one member inflating more than this is a bomb, not a document.
MAX_MEMBER_RATIO = 200
MAX_MEMBERS = 10_000


def check_archive(path: Path, data: bytes, max_bytes: int) -> None:
    """UnsupportedDocument unless ``data`` is a zip whose contents fit the limits."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UnsupportedDocument(f"{path}: not a readable Word file ({exc}).") from exc
    if len(members) > MAX_MEMBERS:
        raise UnsupportedDocument(f"{path}: {len(members)} parts in the archive; not a document.")
    unpacked = sum(m.file_size for m in members)
    if unpacked > MAX_UNPACKED_FACTOR * max_bytes:
        raise UnsupportedDocument(
            f"{path}: unpacks to {unpacked / 1e6:.0f} MB, over {MAX_UNPACKED_FACTOR}x the "
            f"per-file limit (DOSSIER_INGEST_MAX_FILE_MB); refused before unpacking."
        )
    for m in members:
        if m.file_size > MAX_MEMBER_RATIO * max(m.compress_size, 1) and m.file_size > 1_000_000:
            raise UnsupportedDocument(
                f"{path}: part {m.filename!r} inflates {m.file_size // max(m.compress_size, 1)}x "
                "(a zip bomb?); refused before unpacking."
            )


def _paragraphs(document: Any) -> list[str]:
    from docx.table import Table

    out: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            for row in block.rows:
                cells = [c.text.strip() for c in row.cells]
                # Merged cells repeat; keep each text once, in order.
                line = " | ".join(dict.fromkeys(c for c in cells if c))
                if line:
                    out.append(line)
        elif block.text.strip():
            out.append(block.text.strip())
    return out


def _heading(document: Any) -> str:
    for paragraph in document.paragraphs:
        style = (paragraph.style.name if paragraph.style is not None else "") or ""
        if (style == "Title" or style.startswith("Heading")) and paragraph.text.strip():
            return str(paragraph.text.strip())
    return ""


def read_docx(path: Path, data: bytes, max_bytes: int) -> RawArticle:
    check_archive(path, data, max_bytes)
    import docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UnsupportedDocument(f"{path}: not a readable Word file ({exc}).") from exc
    paragraphs = _paragraphs(document)
    if not paragraphs:
        raise UnsupportedDocument(f"{path}: the Word file has no text.")
    text = "\n\n".join(paragraphs)
    props = document.core_properties
    meta: dict[str, Any] = {
        "author": props.author or None,
        "published": iso_date(props.created),
        "language": props.language or None,
    }
    title = (props.title or "").strip() or _heading(document) or first_line(text)
    return RawArticle(path=path, text=text, title=title, meta={k: v for k, v in meta.items() if v})
