"""Boilerplate removal. Only whole lines that match a pattern go; sentences are never edited."""

from __future__ import annotations

import re
from collections.abc import Sequence


class Cleaner:
    def __init__(self, patterns: Sequence[str]) -> None:
        self._line = (
            re.compile(
                r"^\s*(?:" + "|".join(f"(?:{p})" for p in patterns) + r")\s*$", re.IGNORECASE
            )
            if patterns
            else None
        )

    def is_boilerplate(self, line: str) -> bool:
        return bool(self._line and self._line.match(line))

    def clean(self, text: str) -> str:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        kept = [line.rstrip() for line in text.split("\n") if not self.is_boilerplate(line)]
        cleaned = "\n".join(kept)
        cleaned = re.sub(r"\n{3,}", "\n\n", cleaned)
        return cleaned.strip()
