"""Each passage's sentence spans and each sentence's terms, computed at ingest and saved.

Retrieval re-scores the top passages by their best sentence's coverage of the question,
and the answerer cuts the top passages into candidate sentences and stems them. Done per
request, the sentence splitter (NLTK's punkt, about a millisecond per passage) and the
stemmer were most of what a question costs the first time its passages are seen (~45 ms
of ~130 ms in process on the BBC collection; warm, the per-process memo hides it). So the
split is saved once, beside the sentence vectors, in the version's ``sentences/``::

    passage_keys.npy     uint64, sorted: a 64-bit hash of each distinct passage text
    passage_lengths.npy  int64: that text's length (a cheap guard against a collision)
    span_rows.npy        int64 (n+1): passage i's sentences are rows span_rows[i]:[i+1] of
    spans.npy            int32 (m, 2): (start, end) of each sentence in its passage
    term_bytes.npy       int64 (n+1): passage i's terms are bytes term_bytes[i]:[i+1] of
    terms.npy            uint8: UTF-8, one line per sentence, its terms sorted and
                         space-separated (stems never hold whitespace)

Keyed by the passage *text*, as the vectors are by sentence text, so a passage from
either retriever is found without an id map. What is saved is exactly
``sentence_spans(text)`` and ``frozenset(terms(sentence))``, so features and answers do
not change (tests/test_sentence_table.py compares them on the seed collection). A passage
not in the table is split on demand, as before.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dossier.text import sentence_spans, term_set

log = logging.getLogger(__name__)

FILES = (
    "passage_keys.npy",
    "passage_lengths.npy",
    "span_rows.npy",
    "spans.npy",
    "term_bytes.npy",
    "terms.npy",
)


def text_key(text: str) -> int:
    """A 64-bit hash of a text: the key of both saved tables (sentence vectors, passages)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")


@dataclass(frozen=True)
class PassageSentences:
    """A passage's sentences: (start, end) in the passage text, and each one's terms."""

    spans: tuple[tuple[int, int], ...]
    terms: tuple[frozenset[str], ...]


def split(text: str) -> PassageSentences:
    """What the table saves for ``text``, computed now (the on-demand fallback, and ingest;
    ``term_set`` is memoised, so a sentence that overlapping chunks repeat is stemmed once)."""
    spans = tuple(sentence_spans(text))
    return PassageSentences(spans, tuple(term_set(text[s:e]) for s, e in spans))


def distinct_by_key(texts: Iterable[str]) -> dict[int, str]:
    """Each distinct text under its key (:func:`text_key`). Two texts with one key are both
    left out: neither is saved, so a lookup misses and computes them on demand."""
    by_key: dict[int, str] = {}
    collided: set[int] = set()
    for text in texts:
        key = text_key(text)
        if by_key.setdefault(key, text) != text:
            collided.add(key)
    for key in collided:
        del by_key[key]
    return by_key


class SentenceTable:
    """The saved sentences of one collection version, mapped read-only."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        # Plain ndarray views of the mapped files: np.memmap's own indexing costs
        # microseconds per call, and a lookup makes a few.
        arrays = {name: a.view(np.ndarray) for name, a in arrays.items()}
        self.keys = arrays["passage_keys.npy"]
        self.lengths = arrays["passage_lengths.npy"]
        self.span_rows = arrays["span_rows.npy"]
        self.spans = arrays["spans.npy"]
        self.term_bytes = arrays["term_bytes.npy"]
        self.terms = arrays["terms.npy"]

    def __len__(self) -> int:
        return len(self.keys)

    def get(self, text: str) -> PassageSentences | None:
        """The saved sentences of a passage with this text, or None."""
        if not len(self.keys):
            return None
        key = np.uint64(text_key(text))
        i = int(np.searchsorted(self.keys, key))
        if i >= len(self.keys) or self.keys[i] != key or int(self.lengths[i]) != len(text):
            return None
        a, b = int(self.span_rows[i]), int(self.span_rows[i + 1])
        spans: tuple[tuple[int, int], ...] = tuple(map(tuple, self.spans[a:b].tolist()))
        if not spans:
            return PassageSentences((), ())
        blob = self.terms[int(self.term_bytes[i]) : int(self.term_bytes[i + 1])]
        lines = blob.tobytes().decode("utf-8").split("\n")
        return PassageSentences(spans, tuple(map(frozenset, map(str.split, lines))))


def build(passages: Iterable[tuple[str, PassageSentences]]) -> dict[str, np.ndarray]:
    """The table's arrays for (passage text, its sentences) pairs; duplicates kept once."""
    sentences_of: dict[str, PassageSentences] = {}
    for text, sentences in passages:
        sentences_of.setdefault(text, sentences)
    by_key = distinct_by_key(sentences_of)
    keys = np.array(sorted(by_key), dtype=np.uint64)
    lengths = np.zeros(len(keys), dtype=np.int64)
    span_rows = np.zeros(len(keys) + 1, dtype=np.int64)
    term_bytes = np.zeros(len(keys) + 1, dtype=np.int64)
    spans: list[tuple[int, int]] = []
    blobs: list[bytes] = []
    for i, key in enumerate(keys.tolist()):
        text = by_key[key]
        sentences = sentences_of[text]
        lengths[i] = len(text)
        spans.extend(sentences.spans)
        span_rows[i + 1] = len(spans)
        blob = "\n".join(" ".join(sorted(t)) for t in sentences.terms).encode("utf-8")
        blobs.append(blob)
        term_bytes[i + 1] = term_bytes[i] + len(blob)
    return {
        "passage_keys.npy": keys,
        "passage_lengths.npy": lengths,
        "span_rows.npy": span_rows,
        "spans.npy": np.array(spans, dtype=np.int32).reshape(-1, 2),
        "term_bytes.npy": term_bytes,
        "terms.npy": np.frombuffer(b"".join(blobs), dtype=np.uint8),
    }


def write(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Save the arrays in ``folder``, each under a temporary name first, so a reader never
    maps a half-written file (the meta.json that announces them is written after)."""
    for name in FILES:
        tmp = folder / f".tmp-{uuid.uuid4().hex[:8]}-{name}"
        np.save(tmp, arrays[name])
        os.replace(tmp, folder / name)


def load(folder: Path) -> SentenceTable | None:
    """The table saved in ``folder``, or None (not saved, or unreadable: callers then split
    on demand)."""
    try:
        arrays = {name: np.load(folder / name, mmap_mode="r") for name in FILES}
    except (OSError, ValueError) as exc:
        log.warning("cannot load the sentence table at %s: %s", folder, exc)
        return None
    n = len(arrays["passage_keys.npy"])
    if not (
        len(arrays["passage_lengths.npy"]) == n
        and len(arrays["span_rows.npy"]) == len(arrays["term_bytes.npy"]) == n + 1
        and int(arrays["span_rows.npy"][-1]) == len(arrays["spans.npy"])
        and int(arrays["term_bytes.npy"][-1]) == len(arrays["terms.npy"])
    ):
        log.warning("the sentence table at %s is inconsistent: not used", folder)
        return None
    return SentenceTable(arrays)
