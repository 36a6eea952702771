"""PDFs through PDFium (pypdfium2): the text page by page, and the document's metadata.

PDFium rather than pypdf: on the test files both read the same words in the same
order (two-column pages included), and PDFium was 4x faster with less than half the
memory on a 200-page file (benchmarks/ingest_formats.py measures it again). A PDF
without a text layer (a scan) is skipped, never indexed as empty: OCR is not done.
"""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path
from typing import Any

from dossier.errors import NoTextLayer, UnsupportedDocument
from ingest.readers.base import RawArticle, first_line

log = logging.getLogger(__name__)

# PDFium is not thread-safe; the service reads uploads in worker threads.
_LOCK = threading.Lock()
_PDF_DATE = re.compile(r"^(?:D:)?(\d{4})(\d{2})?(\d{2})?")
# A line break inside a paragraph: the next line goes on the same line, joined by a space.
# A line shorter than this share of a full line ends its paragraph.
SHORT_LINE = 0.7
_SENTENCE_END = re.compile(r"[.!?:;\"'”’)\]]$")


def _reflow(page: str) -> str:
    """Join a page's printed lines into paragraphs, one a line.

    PDF text comes out one printed line at a time, so without this a sentence would be
    broken wherever the margin fell. A line ends its paragraph when it ends a sentence,
    or when it stops well short of the page's full line width (a headline, a paragraph's
    last line, a caption). Words hyphenated across lines are joined.
    """
    lines = [line.strip() for line in page.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    widths = sorted(len(line) for line in lines if line)
    # The width of a full line: the 80th percentile, so short lines do not drag it down.
    full = widths[int(0.8 * (len(widths) - 1))] if widths else 0
    out: list[str] = []
    current = ""
    for line in lines:
        if not line:
            if current:
                out.append(current)
                current = ""
            continue
        if not current:
            current = line
        elif current.endswith("-") and line[:1].islower():
            current = current[:-1] + line
        else:
            current = f"{current} {line}"
        if _SENTENCE_END.search(line) or len(line) < SHORT_LINE * full:
            out.append(current)
            current = ""
    if current:
        out.append(current)
    return "\n\n".join(out)


def _pdf_date(value: str | None) -> str | None:
    match = _PDF_DATE.match(value or "")
    if not match:
        return None
    year, month, day = match.groups()
    return "-".join(part for part in (year, month, day) if part)


def read_pdf(path: Path, data: bytes, max_bytes: int) -> RawArticle:
    import pypdfium2 as pdfium

    with _LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as exc:
            if "password" in str(exc).lower():
                raise UnsupportedDocument(
                    f"{path}: the PDF is encrypted and needs a password to open; "
                    "save an unencrypted copy to index it."
                ) from exc
            raise UnsupportedDocument(f"{path}: not a readable PDF ({exc}).") from exc
        try:
            info = doc.get_metadata_dict(skip_empty=True)
            pages: list[str] = []
            for index in range(len(doc)):
                page = doc[index]
                textpage = page.get_textpage()
                try:
                    pages.append(_reflow(textpage.get_text_bounded()))
                finally:
                    textpage.close()
                    page.close()
        except pdfium.PdfiumError as exc:
            raise UnsupportedDocument(f"{path}: the PDF is damaged ({exc}).") from exc
        finally:
            doc.close()
    if not pages or not any(p.strip() for p in pages):
        raise NoTextLayer(
            f"{path}: no text layer in {len(pages)} page(s) (a scanned PDF?); "
            "OCR is not supported, so it is skipped."
        )
    blank = [i + 1 for i, p in enumerate(pages) if not p.strip()]
    if blank:
        log.warning("%s: pages %s have no text layer; indexed without them", path, blank)
    meta: dict[str, Any] = {
        "author": info.get("Author"),
        "published": _pdf_date(info.get("CreationDate")),
    }
    title = str(info.get("Title") or "").strip() or first_line(next(p for p in pages if p.strip()))
    return RawArticle(
        path=path,
        text="\n\n".join(pages),
        title=title,
        meta={k: v for k, v in meta.items() if v},
        pages=pages,
    )
