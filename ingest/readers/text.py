"""Plain text and Markdown (with optional YAML front matter)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from dossier.errors import UnsupportedDocument
from ingest.readers.base import RawArticle, decode, first_line

_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*(?:\n|\Z)", re.DOTALL)


def read_markdown(path: Path, data: bytes, max_bytes: int) -> RawArticle:
    text = decode(data, path)
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
    title = str(meta.get("title") or first_line(text))
    return RawArticle(path=path, text=text, title=title, meta=meta)


def read_text(path: Path, data: bytes, max_bytes: int) -> RawArticle:
    # Plain-text articles (the BBC set, the seed) carry their headline on the first line.
    text = decode(data, path)
    return RawArticle(path=path, text=text, title=first_line(text))
