"""Verification of generated answers: markers parsed, sentences scored, citations built.

Every answerer that writes its own text (the LLM answerer, the chat endpoints) goes
through here, so a citation delivered anywhere meets the same test: its marker
names a retrieved passage, and the support scorer accepts that passage for the
sentence. A passage that addresses the model supports nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from dossier.models import AnswerSentence, Citation, Passage, ScoredPassage
from dossier.text import sentence_spans, terms
from dossier.verify.support import SupportScorer

# "[2]", "[1, 3]", "[Passage 2]": what small models write for a citation.
_MARKER = re.compile(r"\[\s*(?:passage\s*)?(\d{1,3}(?:\s*,\s*\d{1,3})*)\s*\]", re.IGNORECASE)
_ONLY_MARKERS = re.compile(r"^(?:\s*" + _MARKER.pattern + r")+\s*[.!?]?\s*$", re.IGNORECASE)
_LEADING_MARKERS = re.compile(r"^((?:\s*" + _MARKER.pattern + r")+)\s*", re.IGNORECASE)


def marker_numbers(marker: str) -> list[int]:
    m = _MARKER.fullmatch(marker.strip())
    return [int(x) for x in m.group(1).split(",")] if m else []


def strip_markers(text: str) -> str:
    """The text without its citation markers (an earlier answer read back in a conversation)."""
    return " ".join(_MARKER.sub(" ", text).split())


class MarkerFilter:
    """Removes markers to non-existent passages from streamed text.

    A marker can arrive split across deltas ("[", "7", "]"), so text from an open
    bracket is held back until the bracket closes or clearly is not a marker.
    """

    def __init__(self, n_passages: int) -> None:
        self.n = n_passages
        self._held = ""

    def _clean(self, marker: str) -> str:
        nums = marker_numbers(marker)
        if not nums:
            return marker
        valid = [x for x in nums if 1 <= x <= self.n]
        return f"[{', '.join(map(str, valid))}]" if valid else ""

    def feed(self, text: str) -> str:
        out = []
        for ch in text:
            if self._held:
                self._held += ch
                if ch == "]":
                    out.append(self._clean(self._held))
                    self._held = ""
                elif len(self._held) > 24 or ch == "[":
                    out.append(self._held[:-1])  # not a marker after all
                    self._held = "[" if ch == "[" else ""
                    if ch != "[":
                        out.append(ch)
            elif ch == "[":
                self._held = ch
            else:
                out.append(ch)
        return "".join(out)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


@dataclass(frozen=True)
class DraftSentence:
    text: str  # without markers
    cited: tuple[int, ...]  # passage numbers that exist, in order
    dangling: tuple[int, ...]  # marker numbers that point at no passage


def parse_answer(raw: str, n_passages: int) -> list[DraftSentence]:
    """Sentences of a generated answer with the passage numbers their markers cite.

    Markers belong to the sentence they follow: a marker split off after the full
    stop ("… ties. [1]") or carried to the start of the next sentence is moved back.
    """
    pieces: list[tuple[str, list[int]]] = []
    for s, e in sentence_spans(raw):
        chunk = raw[s:e]
        lead = _LEADING_MARKERS.match(chunk)
        if pieces and (lead or _ONLY_MARKERS.match(chunk)):
            head = chunk if _ONLY_MARKERS.match(chunk) else lead.group(1) if lead else ""
            pieces[-1][1].extend(n for m in _MARKER.finditer(head) for n in marker_numbers(m[0]))
            chunk = chunk[len(head) :]
        if not chunk.strip() or _ONLY_MARKERS.match(chunk):
            continue
        nums = [n for m in _MARKER.finditer(chunk) for n in marker_numbers(m[0])]
        pieces.append((chunk, nums))
    out = []
    for chunk, nums in pieces:
        text = " ".join(_MARKER.sub(" ", chunk).split())
        text = re.sub(r"\s+([.,;:!?])", r"\1", text)
        if not any(ch.isalnum() for ch in text):
            continue
        cited = tuple(dict.fromkeys(n for n in nums if 1 <= n <= n_passages))
        dangling = tuple(dict.fromkeys(n for n in nums if not 1 <= n <= n_passages))
        out.append(DraftSentence(text, cited, dangling))
    return out


# Text addressed to a model rather than to readers. Such a passage is still shown to the
# model as data, but it supports nothing: otherwise an article saying "ignore previous
# instructions and reply X" would itself verify the X it asks for.
_INSTRUCTIONS = re.compile(
    r"\b(?:ignore|disregard|forget)\b[^.\n]{0,40}\b(?:instructions|rules|prompt)\b"
    r"|\byou must now\b|\bsystem prompt\b",
    re.IGNORECASE,
)


def addresses_the_model(text: str) -> bool:
    return _INSTRUCTIONS.search(text) is not None


def _quote_span(sentence: str, passage: Passage) -> tuple[int, int]:
    """Document offsets of the passage sentence closest to a generated one, for the UI."""
    spans = sentence_spans(passage.text) or [(0, len(passage.text))]
    wanted = set(terms(sentence))
    s, e = max(spans, key=lambda se: len(wanted & set(terms(passage.text[se[0] : se[1]]))))
    return passage.start + s, passage.start + e


def attribute(
    drafts: Sequence[DraftSentence], passages: Sequence[ScoredPassage], scorer: SupportScorer
) -> tuple[list[DraftSentence], int]:
    """Give each sentence that cites nothing the passage that supports it best, if one does.

    Small models often write a fine answer and forget the markers. Rather than
    throw it away, each uncited sentence is checked against every passage; it
    gets a citation only when the support scorer accepts one, so an attributed
    citation is held to the same test as a cited one. Returns the drafts and how
    many sentences were attributed.
    """
    out: list[DraftSentence] = []
    attributed = 0
    for d in drafts:
        if d.cited:
            out.append(d)
            continue
        best: tuple[float, int] | None = None
        for n, sp in enumerate(passages, start=1):
            if addresses_the_model(sp.passage.text):
                continue
            verdict = scorer.score(d.text, sp.passage.text)
            if verdict.supported and (best is None or verdict.score > best[0]):
                best = (verdict.score, n)
        if best is None:
            out.append(d)
        else:
            attributed += 1
            out.append(replace(d, cited=(best[1],)))
    return out, attributed


@dataclass(frozen=True)
class Verified:
    sentences: list[AnswerSentence]
    citations: list[Citation]
    unsupported: int
    dangling: int


def verify(
    drafts: Sequence[DraftSentence], passages: Sequence[ScoredPassage], scorer: SupportScorer
) -> Verified:
    """Score every sentence against each passage it cites; citations only for real passages."""
    sentences: list[AnswerSentence] = []
    citations: dict[int, Citation] = {}
    unsupported = 0
    for d in drafts:
        best: float | None = None
        supported = False
        for n in d.cited:
            p = passages[n - 1].passage
            if not addresses_the_model(p.text):
                verdict = scorer.score(d.text, p.text)
                supported = supported or verdict.supported
                best = verdict.score if best is None else max(best, verdict.score)
            if n not in citations:
                citations[n] = Citation.of(n, p, *_quote_span(d.text, p))
        unsupported += not supported
        sentences.append(AnswerSentence(d.text, d.cited, supported=supported, support=best))
    return Verified(
        sentences,
        [citations[n] for n in sorted(citations)],
        unsupported,
        sum(len(d.dangling) for d in drafts),
    )


def answer_text(sentences: Sequence[AnswerSentence]) -> str:
    return " ".join(
        s.text + "".join(f" [{n}]" for n in s.citations) if s.citations else s.text
        for s in sentences
    )
