"""Read article files (.md with YAML front matter, .txt, .html) into raw text and metadata."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from dossier.errors import FileTooLarge, UnsupportedDocument

log = logging.getLogger(__name__)

SUPPORTED = frozenset({".md", ".markdown", ".txt", ".html", ".htm"})
DEFAULT_MAX_BYTES = 5_000_000
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)


@dataclass
class RawArticle:
    path: Path
    text: str
    title: str
    meta: dict[str, Any] = field(default_factory=dict)


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


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return short_title(line.strip().lstrip("#").strip())
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


def parse(name: str, data: bytes) -> RawArticle:
    """An article from a file's name and bytes: what the CLI and the HTTP upload share."""
    path = Path(name)
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnsupportedDocument(
            f"{name}: unsupported file type {path.suffix!r}; "
            f"use one of {', '.join(sorted(SUPPORTED))}."
        )
    return loader(path, decode(data, name))


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
    loader = _LOADERS.get(path.suffix.lower())
    if loader is None:
        raise UnsupportedDocument(
            f"{path}: unsupported file type {path.suffix!r}; "
            f"use one of {', '.join(sorted(SUPPORTED))}."
        )
    return loader(path, decode(read_limited(path, max_bytes), path))


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
