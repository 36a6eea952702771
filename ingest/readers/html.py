"""Saved web pages: trafilatura finds the article and the page's own metadata.

trafilatura drops navigation, footers, related links, comments and most consent
banners by itself. Before it runs, elements whose class or id *token* names an ad,
a sponsor block or a consent dialog are removed: trafilatura matches ad classes only
in some spellings (``" ad "`` with spaces on both sides, ``ad-…``), and an ad block
inside the article body ("ADVERTISEMENT - Buy …") would otherwise be indexed as text.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from dossier.errors import UnsupportedDocument
from ingest.readers.base import RawArticle, decode, first_line, iso_date

log = logging.getLogger(__name__)

# Whole class/id tokens (split on spaces, "-" and "_"): "ad", "ads", "advert…",
# "sponsor…", "promo…", "cookie…", "consent", "gdpr". Tokens, not substrings, so
# "header", "shadow" or "load" never match.
_JUNK_TOKEN = re.compile(
    r"^(?:ad|ads|adv|advert\w*|sponsor\w*|promo\w*|cookie\w*|consent\w*|gdpr|paywall)$",
    re.IGNORECASE,
)
_TOKEN_SPLIT = re.compile(r"[\s_\-]+")


def _is_junk(attr: str | None) -> bool:
    return bool(attr) and any(_JUNK_TOKEN.match(t) for t in _TOKEN_SPLIT.split(attr or "") if t)


def _strip_junk(tree: Any) -> int:
    """Remove ad, sponsor and consent elements in place; the number removed."""
    body = tree.find(".//body")
    if body is None:
        return 0
    junk = [
        el
        for el in body.iter()
        if isinstance(el.tag, str) and (_is_junk(el.get("class")) or _is_junk(el.get("id")))
    ]
    removed = 0
    for el in junk:
        parent = el.getparent()
        if parent is not None:  # an ancestor may already have taken it out
            parent.remove(el)
            removed += 1
    return removed


def read_html(path: Path, data: bytes, max_bytes: int) -> RawArticle:
    # Decoding first keeps the binary checks (NUL bytes, control characters) of text files.
    text = decode(data, path)
    import lxml.html
    import trafilatura

    try:
        tree = lxml.html.document_fromstring(text)
    except Exception as exc:  # lxml raises ParserError, ValueError…: all mean "not a page"
        raise UnsupportedDocument(f"{path}: not a readable HTML page ({exc}).") from exc
    removed = _strip_junk(tree)
    if removed:
        log.debug("%s: %d ad/consent elements removed before extraction", path, removed)
    # Precision first: the default (recall) mode keeps navigation on short pages and, when
    # it falls back to its baseline, splits a paragraph at every inline tag (<b>, <a>).
    # A page that precision leaves empty gets the recall mode before it is refused.
    body_text = ""
    page: dict[str, Any] = {}
    for precision in (True, False):
        found = trafilatura.bare_extraction(
            tree,
            with_metadata=True,
            include_comments=False,
            include_tables=True,
            include_images=False,
            favor_precision=precision,
            favor_recall=not precision,
            # No date guessed from the URL or the crawl: only the page's own.
            date_extraction_params={"extensive_search": False, "original_date": True},
        )
        if found is None:
            continue
        page = dict(found) if isinstance(found, dict) else found.as_dict()
        body_text = str(page.get("text") or "")
        if body_text.strip():
            break
    if not body_text.strip():
        raise UnsupportedDocument(
            f"{path}: no article text found in the page (an empty page, or all navigation)."
        )
    # trafilatura puts one paragraph (or heading, or list item) on a line.
    body = "\n\n".join(line.strip() for line in body_text.splitlines() if line.strip())
    meta: dict[str, Any] = {
        "author": page.get("author") or None,
        "publisher": page.get("sitename") or None,
        "published": iso_date(page.get("date")),
        "url": page.get("url") or None,
        "language": tree.get("lang") or None,
    }
    title = page.get("title") or first_line(body)
    return RawArticle(path=path, text=body, title=title, meta={k: v for k, v in meta.items() if v})
