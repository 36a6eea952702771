"""File readers by file type: each turns a file's bytes into a RawArticle.

The registry maps a suffix to its reader. Readers import their libraries (trafilatura,
PDFium, python-docx) when first called, so importing this package stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ingest.readers.base import RawArticle
from ingest.readers.html import read_html
from ingest.readers.pdf import read_pdf
from ingest.readers.text import read_markdown, read_text
from ingest.readers.word import read_docx

Reader = Callable[[Path, bytes, int], RawArticle]

READERS: dict[str, Reader] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_text,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".docx": read_docx,
}
SUPPORTED = frozenset(READERS)

__all__ = ["READERS", "SUPPORTED", "RawArticle", "Reader"]
