"""Read article files (.md with YAML front matter, .txt, .html) into raw text and metadata."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from dossier.errors import UnsupportedDocument

log = logging.getLogger(__name__)

SUPPORTED = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)


@dataclass
class RawArticle:
    path: Path
    text: str
    title: str
    meta: dict[str, Any] = field(default_factory=dict)


def decode(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Older news dumps are often Windows-1252; that codec maps almost every
        # byte, so it is a safe second guess, and we say that we guessed.
        log.warning("%s is not valid UTF-8; decoded as cp1252", path)
        return data.decode("cp1252", errors="replace")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip().lstrip("#").strip()
    return ""


def _load_markdown(path: Path, text: str) -> RawArticle:
    meta: dict[str, Any] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        try:
            loaded = yaml.safe_load(match.group(1)) or {}
        except yaml.YAMLError as exc:
            raise UnsupportedDocument(f"{path}: front matter is not valid YAML ({exc}).") from exc
        if not isinstance(loaded, dict):
            raise UnsupportedDocument(f"{path}: front matter must be a YAML mapping.")
        meta = loaded
        text = text[match.end() :]
    title = str(meta.get("title") or _first_line(text))
    return RawArticle(path=path, text=text, title=title, meta=meta)


class _TextExtractor(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "nav", "footer", "aside"})
    _BLOCK = frozenset(
        {
            "p",
            "div",
            "br",
            "li",
            "ul",
            "ol",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "tr",
            "section",
            "article",
            "header",
            "blockquote",
            "pre",
            "figcaption",
            "table",
        }
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title = ""
        self.h1 = ""
        self._skip = 0
        self._in: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        if tag in self._BLOCK:
            self.parts.append("\n\n")
        self._in.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP and self._skip:
            self._skip -= 1
        if tag in self._BLOCK:
            self.parts.append("\n\n")
        if tag in self._in:
            while self._in and self._in.pop() != tag:
                pass

    def handle_data(self, data: str) -> None:
        current = self._in[-1] if self._in else ""
        if current == "title":
            self.title += data
            return
        if self._skip or "head" in self._in:
            return
        if current == "h1" and not self.h1:
            self.h1 = data.strip()
        self.parts.append(data)


def _load_html(path: Path, text: str) -> RawArticle:
    parser = _TextExtractor()
    parser.feed(text)
    parser.close()
    body = "".join(parser.parts)
    body = re.sub(r"[ \t\r\f\v]+", " ", body)
    body = re.sub(r" ?\n ?", "\n", body)
    body = re.sub(r"\n{3,}", "\n\n", body).strip()
    title = parser.title.strip() or parser.h1 or _first_line(body)
    return RawArticle(path=path, text=body, title=title)


def _load_text(path: Path, text: str) -> RawArticle:
    # Plain-text articles (the BBC set, the seed) carry their headline on the first line.
    return RawArticle(path=path, text=text, title=_first_line(text))


_LOADERS = {
    ".md": _load_markdown,
    ".markdown": _load_markdown,
    ".txt": _load_text,
    ".html": _load_html,
    ".htm": _load_html,
}


def load(path: Path) -> RawArticle:
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnsupportedDocument(
            f"{path}: unsupported file type {path.suffix!r}; "
            f"use one of {', '.join(sorted(SUPPORTED))}."
        )
    return loader(path, decode(path.read_bytes(), path))


def discover(root: Path) -> list[Path]:
    """Article files under ``root``, sorted; READMEs and hidden files are not articles."""
    if root.is_file():
        return [root]
    return sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and p.suffix.lower() in SUPPORTED
        and not p.name.lower().startswith("readme")
        and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )
