"""Text features of a (sentence, passage) pair: numbers, names, units, negation, coverage.

Embeddings alone cannot see "24" versus "48" or "has" versus "has not"; these
features can, and the offline scorer learns how much each one counts.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

import numpy as np

from dossier.text import sentence_spans, stopwords, term_matches, terms, words

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
# Words that open a sentence capitalised without being names. The retrieval stopword
# list is deliberately short (33 words); a paraphrase opens with many more ("Under the
# budget ...", "Since Ireland ...", "Both clubs ..."), and each would otherwise count
# as a name the passage lacks.
_FUNCTION_WORDS = frozenset(
    [
        "about",
        "above",
        "according",
        "across",
        "after",
        "against",
        "all",
        "along",
        "also",
        "although",
        "among",
        "another",
        "any",
        "anyone",
        "anything",
        "around",
        "because",
        "before",
        "behind",
        "below",
        "beside",
        "besides",
        "between",
        "both",
        "despite",
        "down",
        "during",
        "each",
        "either",
        "even",
        "every",
        "everyone",
        "few",
        "following",
        "from",
        "further",
        "given",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "however",
        "i",
        "its",
        "itself",
        "last",
        "later",
        "many",
        "me",
        "meanwhile",
        "more",
        "most",
        "much",
        "my",
        "neither",
        "next",
        "none",
        "nor",
        "now",
        "once",
        "one",
        "only",
        "other",
        "our",
        "ours",
        "over",
        "own",
        "per",
        "perhaps",
        "same",
        "several",
        "she",
        "should",
        "since",
        "so",
        "some",
        "someone",
        "something",
        "still",
        "than",
        "those",
        "though",
        "through",
        "throughout",
        "thus",
        "too",
        "toward",
        "towards",
        "under",
        "unless",
        "until",
        "up",
        "upon",
        "us",
        "we",
        "were",
        "what",
        "whatever",
        "when",
        "where",
        "whereas",
        "whether",
        "which",
        "while",
        "who",
        "whom",
        "whose",
        "why",
        "within",
        "without",
        "would",
        "yet",
        "you",
        "your",
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
    # Digits break a run of number words: "$18 million (£9.25 million)" is not 10^12.
    for w in re.findall(r"[a-z]+|\d+", text.lower()):
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
    this check is for. Function words ("Under", "Since", "Both") are skipped wherever
    they stand; a paraphrase opening with another word the passage lacks ("Soldiers
    of the ...") still counts it as a missing name, and the learned model weighs that.
    """
    stop = stopwords() | (_FUNCTION_WORDS - {"us"})  # "US" is a name
    out: set[str] = set()
    for m in _CAPITALISED.finditer(text):
        raw = m.group()
        word = _quotes(raw).lower().strip("'-")
        if word.endswith("'s"):
            word = word[:-2]
        if word == "us" and raw != "US":
            continue  # the pronoun
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
    if "-" in name:  # "Wal-Mart", "Jay-Z": the passage's words are split at hyphens
        parts = [part for part in name.split("-") if part]
        return bool(parts) and all(part in passage_words for part in parts)
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


# -- the learned scorer's features --------------------------------------------------

PAIR_FEATURES: tuple[str, ...] = (
    "similarity",  # best cosine of the sentence with a passage sentence, pair or the whole
    "similarity_whole",
    "coverage",  # share of the sentence's content terms the passage has
    "clause_coverage",  # ... that the best-aligned passage clause has
    "missing_terms",  # content terms of the sentence the passage lacks (count, log)
    "missing_numbers",
    "missing_units",
    "missing_names",
    "negation_differs",
    "log_words",
)


def sentence_windows(passage: str) -> list[str]:
    """The passage's sentences and pairs of neighbours, so a paraphrase can be aligned."""
    sents = [passage[s:e] for s, e in sentence_spans(passage)] or [passage]
    pairs = [f"{a} {b}" for a, b in itertools.pairwise(sents)]
    return [*sents, *pairs]


def pair_evidence(
    sentence: str, passage: str, window_similarities: Sequence[float], whole_similarity: float
) -> tuple[np.ndarray, list[str]]:
    """The feature vector of a (sentence, passage) pair and the hard checks it fails, in words."""
    reasons: list[str] = []
    missing_numbers = numbers(sentence) - numbers(passage)
    if missing_numbers:
        shown = ", ".join(f"{n:g}" for n in sorted(missing_numbers))
        reasons.append(f"number(s) {shown} not in the passage")
    missing_units = units(sentence) - units(passage)
    if missing_units:
        reasons.append(f"unit(s) {', '.join(sorted(missing_units))} not in the passage")
    passage_words = set(words(_quotes(passage)))
    # "UK's" in the passage is the name "UK" (too short for the shared-stem match).
    passage_words |= {w[:-2] for w in passage_words if w.endswith("'s")}
    passage_acronyms = acronyms(passage)
    missing_names = sorted(
        n for n in names(sentence) if not _name_in(n, passage_words, passage_acronyms)
    )
    if missing_names:
        reasons.append(f"name(s)/date(s) {', '.join(missing_names)} not in the passage")
    clause = aligned_clause(sentence, passage)
    # Negation is compared against the passage clause saying the same thing
    # ("Iran has responded" against "Iran has not yet responded"); clauses, not
    # sentences, because long news sentences negate one clause and assert the next.
    negation_differs = (negations(sentence) > 0) != (negations(clause) > 0)
    if negation_differs:
        reasons.append("negation differs from the passage clause it matches")
    sterms = set(terms(_without_numbers(sentence)))
    pterms = set(terms(_without_numbers(passage)))
    missing_terms = [t for t in sterms if not term_matches(t, pterms)]
    similarity = max([whole_similarity, *window_similarities])
    x = np.array(
        [
            similarity,
            whole_similarity,
            lexical_coverage(sentence, passage),
            lexical_coverage(sentence, clause),
            np.log1p(len(missing_terms)),
            len(missing_numbers),
            len(missing_units),
            len(missing_names),
            float(negation_differs),
            np.log1p(len(sentence.split())),
        ],
        dtype=np.float64,
    )
    if missing_terms:
        reasons.append(f"word(s) {', '.join(sorted(missing_terms)[:6])} not in the passage")
    return x, reasons


def is_verbatim(sentence: str, passage: str) -> bool:
    """The sentence is quoted from the passage (case, quotes and spacing aside)."""
    return _norm(sentence).rstrip(".") in _norm(passage)
