"""Does a passage support a sentence? Scorers shared by the evals and answer verification.

Two scorers sit behind one small interface, :class:`SupportScorer`:

* :class:`OfflineSupportScorer` needs no network and no LLM, so CI can run it.
  It combines the bundled embedder's similarity and lexical coverage with hard
  checks: every number, date and name in the sentence must occur in the
  passage, and a negation must not be flipped against the passage sentence
  that says the same thing. Embeddings alone cannot see "24" versus "48".
* :class:`LLMJudgeScorer` decomposes a sentence into claims and asks an
  OpenAI-compatible model for a verdict on each claim.

They are chosen by name (``DOSSIER_SUPPORT_SCORER``) through :data:`SUPPORT_SCORERS`.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from dossier.embeddings import build_embedder, embed_array
from dossier.errors import ConfigurationError
from dossier.settings import Settings
from dossier.text import sentence_spans, stopwords, term_matches, terms, words

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SupportVerdict:
    supported: bool
    score: float
    reasons: tuple[str, ...] = ()


class SupportScorer(ABC):
    name: str

    @abstractmethod
    def score(self, sentence: str, passage: str) -> SupportVerdict:
        """Whether ``passage`` alone supports everything ``sentence`` states."""

    def claims(self, text: str) -> list[str]:
        """Atomic claims of an answer text; by default its sentences and semicolon clauses."""
        out: list[str] = []
        for s, e in sentence_spans(text):
            out.extend(part.strip() for part in text[s:e].split(";") if part.strip())
        return out


# -- text features used by the hard checks --------------------------------------

_NUMBER_WORDS = {
    "zero": 0,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "thirteen": 13,
    "fourteen": 14,
    "fifteen": 15,
    "sixteen": 16,
    "seventeen": 17,
    "eighteen": 18,
    "nineteen": 19,
    "twenty": 20,
    "thirty": 30,
    "forty": 40,
    "fifty": 50,
    "sixty": 60,
    "seventy": 70,
    "eighty": 80,
    "ninety": 90,
}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000, "billion": 1_000_000_000}
_MONTHS = frozenset(
    [
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ]
)
_NEGATIONS = frozenset(
    [
        "not",
        "no",
        "never",
        "none",
        "nothing",
        "nobody",
        "neither",
        "nor",
        "without",
        "cannot",
        "denied",
        "denies",
        "deny",
    ]
)
# Units of time and measure are facts like numbers: "a week-long" is not "a month-long".
_UNITS = frozenset(
    [
        "second",
        "minute",
        "hour",
        "day",
        "week",
        "month",
        "year",
        "decade",
        "century",
        "metre",
        "meter",
        "kilometre",
        "kilometer",
        "mile",
        "percent",
        "kilogram",
        "tonne",
        "ton",
        "dollar",
        "euro",
        "pound",
    ]
)
_DIGITS = re.compile(r"\d[\d,]*(?:\.\d+)?")
_CAPITALISED = re.compile(r"\b[A-Z][\w’'-]*")


def _quotes(text: str) -> str:
    return text.replace("’", "'").replace("‘", "'").replace("“", '"').replace("”", '"')


def _norm(text: str) -> str:
    return " ".join(_quotes(text).lower().split())


def numbers(text: str) -> set[float]:
    """Numbers written as digits or words ("3,000", "twenty-four", "three thousand")."""
    found: set[float] = set()
    for m in _DIGITS.finditer(text):
        raw = m.group().rstrip(",").replace(",", "")
        try:
            found.add(float(raw))
        except ValueError:  # pragma: no cover - the regex only matches digits
            continue
    value: float | None = None
    for w in re.findall(r"[a-z]+", text.lower()):
        if w in _NUMBER_WORDS:
            value = (value or 0) + _NUMBER_WORDS[w]
        elif w in _SCALES and value is not None:
            value *= _SCALES[w]
        elif w in _SCALES:
            value = float(_SCALES[w])
        elif w == "and" and value is not None:
            continue  # "three hundred and five"
        else:
            if value is not None:
                found.add(float(value))
            value = None
    if value is not None:
        found.add(float(value))
    return found


def names(text: str) -> set[str]:
    """Proper names and months: capitalised words that are not function words.

    Months count only when capitalised, so the modal "may" is not a date. A
    sentence-initial capital is kept too: without a tagger it cannot be told from a
    name, and a swapped subject ("Russia and Israel launched Stuxnet") is exactly what
    this check is for. The cost: a paraphrase opening with a word the passage lacks
    is not supported.
    """
    stop = stopwords()
    out: set[str] = set()
    for m in _CAPITALISED.finditer(text):
        word = _quotes(m.group()).lower().strip("'-")
        if word.endswith("'s"):
            word = word[:-2]
        if word and word not in stop and word not in _NUMBER_WORDS and word not in _SCALES:
            out.add(word)
    return out


def units(text: str) -> set[str]:
    """Units of time and measure named in the text, singular ("weeks" -> "week")."""
    found: set[str] = set()
    for w in re.findall(r"[a-z]+", text.lower()):
        base = w[:-1] if w.endswith("s") and w[:-1] in _UNITS else w
        if base in _UNITS:
            found.add(base)
    return found


def acronyms(text: str) -> set[str]:
    """Initials of runs of capitalised words: "United Arab Emirates" -> "uae"."""
    out: set[str] = set()
    run: list[str] = []
    for token in [*re.findall(r"[\w'’-]+", text), ""]:
        if token[:1].isupper():
            run.append(token[0].lower())
            continue
        for i in range(len(run)):
            for j in range(i + 2, len(run) + 1):
                out.add("".join(run[i:j]))
        run = []
    return out


def _name_in(
    name: str, passage_words: set[str], passage_acronyms: frozenset[str] | set[str] = frozenset()
) -> bool:
    if name in passage_words or name in passage_acronyms:
        return True
    # Demonyms and possessives share a stem: Iran/Iranian, Albania/Albania's.
    if len(name) < 4:
        return False
    return any(len(p) >= 4 and (p.startswith(name) or name.startswith(p)) for p in passage_words)


def negations(text: str) -> int:
    return sum(1 for w in words(text) if w in _NEGATIONS or w.endswith("n't"))


_CLAUSE = re.compile(r"[,;:“”\"()]|\bbut\b|\bwhile\b|\bwhereas\b")


def aligned_clause(sentence: str, passage: str) -> str:
    """The passage clause sharing the most content terms with the sentence."""
    sterms = set(terms(sentence))
    best, best_key = passage, (-1, 0)
    sentences = [passage[s:e] for s, e in sentence_spans(passage)] or [passage]
    for clause in (c for sent in sentences for c in _CLAUSE.split(sent)):
        cterms = set(terms(clause))
        if not cterms:
            continue
        shared = sum(1 for t in sterms if term_matches(t, cterms))
        key = (shared, -len(cterms))  # ties go to the tighter clause
        if key > best_key:
            best, best_key = clause, key
    return best


_NUMBER_TOKEN = re.compile(
    r"\d[\d,.]*|\b(?:" + "|".join([*_NUMBER_WORDS, *_SCALES]) + r")\b", re.IGNORECASE
)


def _without_numbers(text: str) -> str:
    return _NUMBER_TOKEN.sub(" ", text)


def lexical_coverage(sentence: str, passage: str) -> float:
    """Share of the sentence's content terms that the passage contains."""
    # Numbers are left to the hard check, which knows "twenty-four" is "24".
    sterms = set(terms(_without_numbers(sentence)))
    if not sterms:
        return 1.0
    pterms = set(terms(_without_numbers(passage)))
    return sum(1 for t in sterms if term_matches(t, pterms)) / len(sterms)


# -- the offline scorer ---------------------------------------------------------


class OfflineSupportScorer(SupportScorer):
    """Similarity plus lexical coverage, vetoed by hard checks on numbers, names and negation."""

    name = "offline"

    def __init__(
        self,
        embedder: BaseEmbedding,
        *,
        threshold: float = 0.55,
        semantic_weight: float = 0.5,
        cache_size: int = 20_000,
    ) -> None:
        self.embedder = embedder
        self.threshold = threshold
        self.semantic_weight = semantic_weight
        self._cache: dict[str, np.ndarray] = {}
        self._cache_size = cache_size

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        todo = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if todo:
            if len(self._cache) + len(todo) > self._cache_size:
                self._cache.clear()
            for text, vector in zip(todo, embed_array(self.embedder, todo), strict=True):
                self._cache[text] = vector
        return np.stack([self._cache[t] for t in texts])

    @staticmethod
    def _windows(passage: str) -> list[str]:
        """The passage's sentences and pairs of neighbours, so a paraphrase can be aligned."""
        sents = [passage[s:e] for s, e in sentence_spans(passage)] or [passage]
        pairs = [f"{a} {b}" for a, b in itertools.pairwise(sents)]
        return [*sents, *pairs]

    def score(self, sentence: str, passage: str) -> SupportVerdict:
        if not sentence.strip():
            return SupportVerdict(True, 1.0, ("empty sentence",))
        if _norm(sentence).rstrip(".") in _norm(passage):
            return SupportVerdict(True, 1.0, ("quoted verbatim from the passage",))
        reasons: list[str] = []
        missing_numbers = numbers(sentence) - numbers(passage)
        if missing_numbers:
            shown = ", ".join(f"{n:g}" for n in sorted(missing_numbers))
            reasons.append(f"number(s) {shown} not in the passage")
        missing_units = units(sentence) - units(passage)
        if missing_units:
            reasons.append(f"unit(s) {', '.join(sorted(missing_units))} not in the passage")
        passage_words = set(words(_quotes(passage)))
        passage_acronyms = acronyms(passage)
        missing_names = sorted(
            n for n in names(sentence) if not _name_in(n, passage_words, passage_acronyms)
        )
        if missing_names:
            reasons.append(f"name(s)/date(s) {', '.join(missing_names)} not in the passage")

        windows = self._windows(passage)
        vectors = self._embed([sentence, passage, *windows])
        sims = vectors[1:] @ vectors[0]
        similarity = float(sims.max())
        # Negation is compared against the passage clause saying the same thing
        # ("Iran has responded" against "Iran has not yet responded"); clauses, not
        # sentences, because long news sentences negate one clause and assert the next.
        if (negations(sentence) > 0) != (negations(aligned_clause(sentence, passage)) > 0):
            reasons.append("negation differs from the passage clause it matches")
        cov = lexical_coverage(sentence, passage)
        combined = self.semantic_weight * similarity + (1 - self.semantic_weight) * cov
        if combined < self.threshold:
            reasons.append(
                f"weak match: similarity {similarity:.2f}, term coverage {cov:.2f} "
                f"(combined {combined:.2f} < {self.threshold:.2f})"
            )
        supported = not reasons
        if supported:
            reasons.append(f"similarity {similarity:.2f}, term coverage {cov:.2f}")
        return SupportVerdict(supported, round(combined, 4), tuple(reasons))


# -- the LLM judge --------------------------------------------------------------


class ChatClient(Protocol):
    """The one call the judge needs from a chat model: messages in, text out."""

    def complete(self, messages: list[dict[str, str]]) -> str: ...


class OpenAIChat:
    """An OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, LiteLLM, …)."""

    def __init__(self, base_url: str, api_key: str | None, model: str) -> None:
        from openai import OpenAI

        # Local servers accept any key, but the client insists on one.
        self._client = OpenAI(base_url=base_url, api_key=api_key or "not-needed")
        self.model = model

    def complete(self, messages: list[dict[str, str]]) -> str:
        reply = self._client.chat.completions.create(
            model=self.model,
            messages=messages,  # type: ignore[arg-type]
            temperature=0,
        )
        return reply.choices[0].message.content or ""


@dataclass
class ScriptedChat:
    """A chat client that replays scripted replies and records every prompt.

    It ships with the package so the judge's prompting and parsing are tested
    without a network; it does not judge anything itself.
    """

    replies: list[str]
    prompts: list[list[dict[str, str]]] = field(default_factory=list)

    def complete(self, messages: list[dict[str, str]]) -> str:
        self.prompts.append(messages)
        if not self.replies:
            raise AssertionError("ScriptedChat ran out of replies")
        return self.replies.pop(0)


DECOMPOSE_PROMPT = (
    "Split the sentence into short, self-contained factual claims. Resolve pronouns. "
    'Reply with JSON only: {"claims": ["...", "..."]}.\n\nSentence: '
)
VERDICT_PROMPT = (
    "Does the passage, and nothing else, support the claim? Numbers, dates, names and "
    "negations must match exactly. Reply with JSON only: "
    '{"verdict": "supported" | "unsupported", "reason": "..."}.\n\n'
)
_JSON = re.compile(r"\{.*\}|\[.*\]", re.DOTALL)


def parse_json_reply(reply: str) -> Any:
    """The first JSON object or array in a model reply (models wrap JSON in prose or fences)."""
    m = _JSON.search(reply)
    if not m:
        raise ValueError(f"no JSON in reply: {reply[:80]!r}")
    return json.loads(m.group())


class LLMJudgeScorer(SupportScorer):
    """Claim decomposition, then a supported/unsupported verdict per claim."""

    name = "llm-judge"

    def __init__(self, client: ChatClient) -> None:
        self.client = client

    def claims(self, text: str) -> list[str]:
        reply = self.client.complete([{"role": "user", "content": DECOMPOSE_PROMPT + text}])
        try:
            data = parse_json_reply(reply)
            items = data["claims"] if isinstance(data, dict) else data
            claims = [str(c).strip() for c in items if str(c).strip()]
        except (ValueError, KeyError, TypeError):
            # A judge that cannot decompose still judges the whole sentence as one claim.
            log.warning("unparseable claim decomposition; judging the sentence whole")
            return [text]
        return claims or [text]

    def verdict(self, claim: str, passage: str) -> tuple[bool, str]:
        prompt = f"{VERDICT_PROMPT}Passage: {passage}\n\nClaim: {claim}"
        reply = self.client.complete([{"role": "user", "content": prompt}])
        try:
            data = parse_json_reply(reply)
            verdict = str(data["verdict"]).strip().lower()
            reason = str(data.get("reason", ""))
        except (ValueError, KeyError, TypeError, AttributeError):
            # An unreadable verdict counts against support: a gate must not pass on noise.
            return False, f"unparseable verdict: {reply[:80]!r}"
        if verdict not in {"supported", "unsupported"}:
            return False, f"unknown verdict {verdict!r}"
        return verdict == "supported", reason

    def score(self, sentence: str, passage: str) -> SupportVerdict:
        claims = self.claims(sentence)
        results = [(c, *self.verdict(c, passage)) for c in claims]
        ok = sum(1 for _, good, _ in results if good)
        reasons = tuple(
            f"{'supported' if good else 'unsupported'}: {c} ({why})" for c, good, why in results
        )
        return SupportVerdict(ok == len(results), ok / len(results), reasons)


# -- registry -------------------------------------------------------------------


def _offline(settings: Settings, embedder: BaseEmbedding | None) -> SupportScorer:
    return OfflineSupportScorer(
        embedder or build_embedder(settings), threshold=settings.support_threshold
    )


def _llm_judge(settings: Settings, embedder: BaseEmbedding | None) -> SupportScorer:
    if not settings.llm_base_url or not settings.llm_model:
        raise ConfigurationError(
            "The llm-judge support scorer needs DOSSIER_LLM_BASE_URL and DOSSIER_LLM_MODEL."
        )
    key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
    return LLMJudgeScorer(OpenAIChat(settings.llm_base_url, key, settings.llm_model))


SUPPORT_SCORERS: dict[str, Callable[[Settings, BaseEmbedding | None], SupportScorer]] = {
    "offline": _offline,
    "llm-judge": _llm_judge,
}


def build_support_scorer(
    settings: Settings, embedder: BaseEmbedding | None = None, name: str | None = None
) -> SupportScorer:
    """The scorer named in settings; "auto" is the judge when an endpoint is set, else offline."""
    name = name or settings.support_scorer
    if name == "auto":
        name = "llm-judge" if settings.llm_base_url and settings.llm_model else "offline"
    try:
        factory = SUPPORT_SCORERS[name]
    except KeyError:
        raise ConfigurationError(
            f"Unknown support scorer {name!r}; DOSSIER_SUPPORT_SCORER must be auto or one of "
            f"{', '.join(sorted(SUPPORT_SCORERS))}."
        ) from None
    return factory(settings, embedder)
