"""When sources disagree: another document states the answer's claim with another value.

For each sentence of an answer, the sentences of retrieved passages from *other*
documents are compared with it. A sentence disagrees when it makes the same claim
(it shares most of the answer sentence's content words once numbers are removed, and
names the same entities) but states a different value: a number, an amount, a
percentage, a duration or a date that the answer sentence lacks, while the answer
sentence states one that it lacks. Copies that agree carry the same values and are
not conflicts; a longer sentence that only adds a figure is not one either.

The content-overlap cutoff and the overlap measure are fitted by
``python -m evals.conflicts --save`` on the train split of a synthetic set of BBC
articles and chosen on its validation split; the result is ``dossier/data/conflict_rule.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from pathlib import Path

from dossier.models import Answer, Citation, Conflict, DisagreeingSource, Passage, ScoredPassage
from dossier.text import sentence_spans, term_matches, term_set, words
from dossier.verify.features import _name_in, _quotes, _without_numbers, acronyms, names

RULE_PATH = Path(__file__).resolve().parents[1] / "data" / "conflict_rule.json"
MEASURES = ("coverage", "min_coverage", "jaccard")

_MONTH_NAMES = (
    "January|February|March|April|May|June|July|August|September|October|November|December"
)
_NUMBER_WORD = (
    r"two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|"
    r"fifteen|sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|"
    r"seventy|eighty|ninety|hundred|thousand|million|billion"
)
_WEEKDAY_NAMES = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
# Ranks ("fifth in the table", "third place"); "first" is left out: "for the first time"
# is an idiom far more often than a rank.
_ORDINAL_NAMES = (
    "second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|eleventh|twelfth|"
    "thirteenth|fourteenth|fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth"
)
_SUFFIX = (
    r"(?:\s?%|\s?(?:per\s?cent|percent|bn|billion|m|million|k|thousand|trillion|tn|am|pm|"
    r"km|kg|mph|sec|secs|seconds|minutes|mins|hours|days|weeks|months|years)\b)?"
)
# Dates first, so "5 March 2005" is one value and not a date and a number.
_VALUE = re.compile(
    rf"\b(?:\d{{1,2}}(?:st|nd|rd|th)?\s+)?(?:{_MONTH_NAMES})\b(?:\s+\d{{1,2}}(?:st|nd|rd|th)?\b)?"
    rf"(?:,?\s+\d{{4}}\b)?"
    rf"|[$£€]?\d[\d,]*(?:[.:/]\d+)*{_SUFFIX}"
    rf"|\b(?:{_NUMBER_WORD})(?:[- ](?:{_NUMBER_WORD}))*\b{_SUFFIX}"
    rf"|\b(?:{_WEEKDAY_NAMES})\b|\b(?:{_ORDINAL_NAMES})\b",
    re.IGNORECASE,
)
_CANONICAL_SUFFIX = {
    "percent": "%",
    "per cent": "%",
    "percent ": "%",
    "bn": "billion",
    "tn": "trillion",
    "m": "million",
    "k": "thousand",
    "secs": "seconds",
    "sec": "seconds",
    "mins": "minutes",
}


@dataclass(frozen=True)
class Value:
    """A figure or date as written, where it is, and a key that equal values share."""

    text: str
    start: int
    end: int
    key: str


_MONTH_SET = frozenset(_MONTH_NAMES.lower().split("|"))


def _key(raw: str) -> str:
    text = " ".join(_quotes(raw).lower().replace(",", "").split())
    parts = text.split()
    if any(p in _MONTH_SET for p in parts):  # "5 March 2005" is "March 5 2005"
        return " ".join(sorted(re.sub(r"(?<=\d)(?:st|nd|rd|th)$", "", p) for p in parts))
    m = re.match(r"^([$£€]?[\d.:]+)\s?(.*)$", text)
    if m:
        number, suffix = m.groups()
        suffix = _CANONICAL_SUFFIX.get(suffix.strip(), suffix.strip())
        return f"{number}{suffix}"
    return text.replace("-", " ")


@lru_cache(maxsize=65_536)
def values(text: str) -> tuple[Value, ...]:
    """The figures and dates of a text: "$1.13bn", "76%", "1:47.97", "5 March 2005",
    "Tuesday", "fifth"."""
    out: list[Value] = []
    for m in _VALUE.finditer(text):
        raw = m.group().rstrip(".,:")
        if not raw or (raw.isalpha() and raw.lower() == "may" and raw[0] != "M"):
            continue  # the modal "may"
        if raw.isalpha() and raw.lower() in {"hundred", "thousand", "million", "billion"}:
            continue  # "thousands of", "millions of": no value
        out.append(Value(raw, m.start(), m.start() + len(raw), _key(raw)))
    return tuple(out)


@dataclass(frozen=True)
class ConflictRule:
    """What counts as the same claim: an overlap measure and its cutoff (fitted)."""

    measure: str = "min_coverage"
    min_overlap: float = 0.6
    # Share of the answer sentence's names the other sentence must also name.
    min_names: float = 1.0


@lru_cache(maxsize=4)
def load_rule(path: Path = RULE_PATH) -> ConflictRule:
    if not path.exists():
        return ConflictRule()
    data = json.loads(path.read_text(encoding="utf-8"))
    return ConflictRule(
        measure=str(data["measure"]),
        min_overlap=float(data["min_overlap"]),
        min_names=float(data.get("min_names", 1.0)),
    )


@dataclass(frozen=True)
class Comparison:
    """An answer sentence against another source's sentence."""

    overlap: float  # by the rule's measure; see :func:`overlap`
    names: float  # share of the answer sentence's names the other sentence has
    stated: tuple[Value, ...]  # the answer sentence's values the other lacks
    other: tuple[Value, ...]  # the other sentence's values the answer sentence lacks

    @property
    def differs(self) -> bool:
        return bool(self.stated) and bool(self.other)


@lru_cache(maxsize=65_536)
def _content(text: str) -> frozenset[str]:
    stripped = _VALUE.sub(" ", _without_numbers(text))
    return term_set(stripped)


def overlap(a: frozenset[str], b: frozenset[str], measure: str) -> float:
    """How much of one sentence's content (numbers removed) the other shares."""
    if not a or not b:
        return 0.0
    a_in_b = sum(1 for t in a if term_matches(t, b)) / len(a)
    if measure == "coverage":
        return a_in_b
    b_in_a = sum(1 for t in b if term_matches(t, a)) / len(b)
    if measure == "min_coverage":
        return min(a_in_b, b_in_a)
    if measure == "jaccard":
        shared = sum(1 for t in a if term_matches(t, b))
        return shared / (len(a) + len(b) - shared)
    raise ValueError(f"unknown overlap measure {measure!r}; use one of {', '.join(MEASURES)}")


@lru_cache(maxsize=65_536)
def _names(text: str) -> frozenset[str]:
    return frozenset(names(_VALUE.sub(" ", text)))


@lru_cache(maxsize=65_536)
def _name_index(text: str) -> tuple[set[str], frozenset[str]]:
    """The words and acronyms a name may be found among (cached: do not change them)."""
    found = set(words(_quotes(text)))
    found |= {w[:-2] for w in found if w.endswith("'s")}
    return found, frozenset(acronyms(text))


def _name_share(sentence: str, other: str) -> float:
    wanted = _names(sentence)
    if not wanted:
        return 1.0
    other_words, found = _name_index(other)
    return sum(1 for n in wanted if _name_in(n, other_words, found)) / len(wanted)


_DECIMAL = re.compile(r"^([$£€]?)(\d+(?:\.\d+)?)(\D*)$")


def same_value(a: str, b: str) -> bool:
    """Equal keys, or one a rounding of the other ("29%" and "28.9%", "$1.1bn" and "$1.13bn")."""
    if a == b:
        return True
    ma, mb = _DECIMAL.match(a), _DECIMAL.match(b)
    if ma is None or mb is None or (ma[1], ma[3]) != (mb[1], mb[3]):
        return False
    places = min(len(ma[2].partition(".")[2]), len(mb[2].partition(".")[2]))
    da, db = Decimal(ma[2]), Decimal(mb[2])
    step = Decimal(1).scaleb(-places)
    return da.quantize(step, ROUND_HALF_UP) == db.quantize(step, ROUND_HALF_UP)


def compare(sentence: str, other: str, measure: str = "min_coverage") -> Comparison:
    mine, theirs = values(sentence), values(other)
    return Comparison(
        overlap=overlap(_content(sentence), _content(other), measure),
        names=_name_share(sentence, other),
        stated=tuple(v for v in mine if not any(same_value(v.key, t.key) for t in theirs)),
        other=tuple(t for t in theirs if not any(same_value(v.key, t.key) for v in mine)),
    )


@lru_cache(maxsize=4096)
def _spans(text: str) -> tuple[tuple[int, int], ...]:
    """A passage's sentences, split once for all the answer's sentences (and answers)."""
    return tuple(sentence_spans(text)) or ((0, len(text)),)


@dataclass(frozen=True)
class Disagreement:
    """A sentence of another document's passage that disagrees with an answer sentence."""

    passage: Passage
    start: int  # document offsets of the disagreeing sentence
    end: int
    comparison: Comparison


def disagreements(
    sentence: str,
    passages: Sequence[Passage],
    exclude_docs: frozenset[str] | set[str],
    rule: ConflictRule | None = None,
) -> list[Disagreement]:
    """For each other document, its best-aligned sentence if it states another value."""
    rule = rule or load_rule()
    if not values(sentence):
        return []
    best: dict[str, tuple[float, Disagreement | None]] = {}
    for p in passages:
        if p.doc_id in exclude_docs:
            continue
        for s, e in _spans(p.text):
            text = p.text[s:e]
            c = compare(sentence, text, rule.measure)
            if c.overlap < rule.min_overlap or c.names < rule.min_names:
                continue
            found = Disagreement(p, p.start + s, p.start + e, c) if c.differs else None
            # The document's best-aligned sentence decides: one that agrees wins.
            if p.doc_id not in best or c.overlap > best[p.doc_id][0]:
                best[p.doc_id] = (c.overlap, found)
    return [d for _, d in best.values() if d is not None]


def _date_key(published: str | None) -> tuple[int, str]:
    return (0, published) if published else (1, "")


def _joined(vals: Sequence[Value]) -> str:
    return ", ".join(dict.fromkeys(v.text for v in vals))


def _when(published: str | None, own: str | None) -> str:
    """ " (2005-06-01, newer)": the source's date, and how it stands to the answer's own
    source, so the reader knows which report came later; nothing when the date is unknown."""
    if not published:
        return ""
    day = published[:10]
    if not own or own[:10] == day:
        return f" ({day})"
    return f" ({day}, {'newer' if day > own[:10] else 'older'})"


Search = Callable[[str], Sequence[ScoredPassage]]


def flag_conflicts(
    answer: Answer,
    passages: Sequence[ScoredPassage],
    rule: ConflictRule | None = None,
    search: Search | None = None,
) -> Answer:
    """The answer with its ``conflicts`` and a closing sentence that cites each
    disagreeing source (its sentence added as a citation, so every [n] quotes a document).
    A refusal, or an answer no other source contradicts, comes back unchanged.

    ``search`` (a sentence -> passages lookup) adds a targeted search for each answer
    sentence that states a value: another report of the same fact need not be among the
    passages retrieved for the question."""
    if answer.refused or not answer.sentences:
        return answer
    by_number = {c.number: c for c in answer.citations}
    pool = [sp.passage for sp in passages]
    citations = list(answer.citations)
    cited = {(c.doc_id, c.start, c.end): c.number for c in citations}
    conflicts: list[Conflict] = []
    notes: list[str] = []
    searched: dict[str, ScoredPassage] = {}  # found by the targeted search, not retrieved
    for i, sentence in enumerate(answer.sentences):
        if not values(sentence.text):
            continue  # no figure or date to disagree about: spare the search
        own = [by_number[n] for n in sentence.citations if n in by_number]
        candidates = pool
        if search is not None:
            seen = {p.passage_id for p in pool}
            for sp in search(sentence.text):
                if sp.passage.passage_id not in seen and sp.passage.passage_id not in searched:
                    searched[sp.passage.passage_id] = sp
            candidates = pool + [sp.passage for sp in searched.values()]
        found = disagreements(sentence.text, candidates, {c.doc_id for c in own}, rule)
        if not found:
            continue
        found.sort(key=lambda d: (_date_key(d.passage.published), d.passage.doc_id))
        own_date = next((c.published for c in own if c.published), None)
        sources: list[DisagreeingSource] = []
        for d in found:
            key = (d.passage.doc_id, d.start, d.end)
            if key not in cited:
                number = len(citations) + 1
                citations.append(Citation.of(number, d.passage, d.start, d.end))
                cited[key] = number
            value = _joined(d.comparison.other)
            sources.append(
                DisagreeingSource(
                    value=value,
                    citation=cited[key],
                    quote=d.passage.text[d.start - d.passage.start : d.end - d.passage.start],
                    doc_id=d.passage.doc_id,
                    passage_id=d.passage.passage_id,
                    title=d.passage.title,
                    publisher=d.passage.publisher,
                    published=d.passage.published,
                    start=d.start,
                    end=d.end,
                )
            )
            notes.append(f"[{cited[key]}] gives {value}{_when(d.passage.published, own_date)}")
        stated = [v for d in found for v in d.comparison.stated]
        conflicts.append(
            Conflict(
                sentence=i,
                value=_joined(stated),
                citation=own[0].number if own else None,
                sources=tuple(sources),
            )
        )
    if not conflicts:
        return answer
    note = "Sources disagree: " + "; ".join(dict.fromkeys(notes)) + "."
    # A cited passage the search found joins the answer's passages: every citation points
    # at a passage the answer delivers.
    used = {c.passage_id for c in citations}
    found_passages = [sp for pid, sp in searched.items() if pid in used]
    return replace(
        answer,
        text=f"{answer.text} {note}",
        citations=citations,
        conflicts=conflicts,
        passages=[*answer.passages, *found_passages],
    )
