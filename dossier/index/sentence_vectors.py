"""Answer-candidate sentence vectors, computed at ingest and saved beside the BM25 index.

The learned answerer scores every sentence of the retrieved passages by its cosine to the
question. Embedding ~40 sentences the first time a question touches them cost ~0.5 s on
two cores (the in-memory cache only helps the second time), so ingestion embeds every
sentence once and saves the vectors in the collection version's lexical directory::

    DATA_DIR/lexical/<collection>/v<version>-<signature>/sentences/
        keys.npy      uint64, sorted: a 64-bit hash of each distinct sentence text
        vectors.npy   float32 (n, dim): the embedder's vector of that text, same order
        meta.json     embedder id, count, dimension, build time, format
        (format 2)    each passage's sentence spans and terms: see dossier/sentence_table.py

Keyed by the sentence *text* (what ``Dossier._embed_texts`` caches by), so overlapping
chunks share a row and a lookup needs no passage ids. The sentences are exactly
``candidates``': ``sentence_spans`` over each passage's text. The vectors are float32, the
embedder's own output, so a stored vector is the one a query-time call would compute and
answers do not change. Servers map both arrays (shared pages across workers); a text
without a stored vector (an index saved before this existed, a hash collision) is
embedded as before. A format-1 directory (vectors only, saved before the sentence table
existed) is completed in place by the next ``save`` (``dossier index-sentences``).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from dossier.index import sentence_table
from dossier.index.sentence_table import PassageSentences, SentenceTable, text_key
from dossier.models import Passage
from dossier.text import sentence_spans

log = logging.getLogger(__name__)

DIRNAME = "sentences"
_BATCH = 512  # texts per embedder call while saving: bounds memory, keeps batches full
# 1: the vectors; 2: also the sentence table (each passage's sentence spans and terms).
FORMAT = 2

sentence_key = text_key


def passage_sentences(passage: Passage) -> list[str]:
    """The passage's sentences as ``dossier.selection.candidates`` cuts them."""
    return [passage.text[s:e] for s, e in sentence_spans(passage.text)]


class SentenceVectors:
    """Saved sentence vectors of one collection version, mapped read-only."""

    def __init__(self, keys: np.ndarray, vectors: np.ndarray, embedder: str) -> None:
        self.keys = keys
        self.vectors = vectors
        self.embedder = embedder

    def __len__(self) -> int:
        return len(self.keys)

    def lookup(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """The stored vector of each text that has one."""
        if not texts or not len(self.keys):
            return {}
        wanted = np.fromiter((sentence_key(t) for t in texts), dtype=np.uint64, count=len(texts))
        pos = np.searchsorted(self.keys, wanted)
        pos[pos >= len(self.keys)] = 0
        hit = self.keys[pos] == wanted
        rows = np.asarray(self.vectors[pos[hit]], dtype=np.float32)
        found = [t for t, h in zip(texts, hit, strict=True) if h]
        return dict(zip(found, rows, strict=True))


def load(version_dir: Path, embedder: str) -> SentenceVectors | None:
    """The vectors saved in a lexical version directory, or None (none saved, another
    embedder's, or unreadable: callers then embed as before)."""
    folder = version_dir / DIRNAME
    meta_path = folder / "meta.json"
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("embedder") != embedder:
            log.warning(
                "sentence vectors at %s are for %s, not %s: not used",
                folder,
                meta.get("embedder"),
                embedder,
            )
            return None
        keys = np.load(folder / "keys.npy", mmap_mode="r")
        vectors = np.load(folder / "vectors.npy", mmap_mode="r")
    except (OSError, ValueError) as exc:
        log.warning("cannot load the sentence vectors at %s: %s", folder, exc)
        return None
    if len(keys) != len(vectors) or len(keys) != int(meta.get("count", -1)):
        log.warning("sentence vectors at %s are inconsistent: not used", folder)
        return None
    return SentenceVectors(keys, vectors, embedder)


def load_table(version_dir: Path) -> SentenceTable | None:
    """The sentence table saved in a lexical version directory, or None (none saved, or
    a format-1 directory: callers then split passages on demand)."""
    folder = version_dir / DIRNAME
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if int(meta.get("format", 1)) < 2:
        return None
    return sentence_table.load(folder)


def _split_all(passages: Iterable[Passage]) -> list[tuple[str, PassageSentences]]:
    """Each passage's sentences and their terms (what the sentence table saves)."""
    return [(p.text, sentence_table.split(p.text)) for p in passages]


def _complete(folder: Path, passages: Iterable[Passage]) -> dict[str, float]:
    """Add the sentence table to a format-1 directory (vectors only), in place."""
    started = time.perf_counter()
    meta_path = folder / "meta.json"
    meta = json.loads(meta_path.read_text())
    if int(meta.get("format", 1)) >= FORMAT:
        return {"sentences": 0, "embedded": 0, "passages": 0, "seconds": 0.0}
    arrays = sentence_table.build(_split_all(passages))
    sentence_table.write(folder, arrays)
    seconds = round(time.perf_counter() - started, 3)
    meta.update(format=FORMAT, passages=len(arrays["passage_keys.npy"]), table_seconds=seconds)
    tmp = folder / f".tmp-meta-{uuid.uuid4().hex[:8]}.json"
    tmp.write_text(json.dumps(meta, indent=1))
    os.replace(tmp, meta_path)  # after the arrays: format 2 says they are complete
    log.info("sentence table for %s: %d passages, %.2f s", folder, meta["passages"], seconds)
    return {"sentences": 0, "embedded": 0, "passages": meta["passages"], "seconds": seconds}


def _previous(version_dir: Path, embedder: str) -> list[SentenceVectors]:
    """Vectors saved for other versions of the same collection, newest first, for reuse."""
    others = [
        d
        for d in version_dir.parent.iterdir()
        if d != version_dir and (d / DIRNAME / "meta.json").exists()
    ]
    others.sort(key=lambda d: d.stat().st_mtime, reverse=True)
    loaded = (load(d, embedder) for d in others)
    return [v for v in loaded if v is not None]


def save(
    version_dir: Path,
    passages: Iterable[Passage],
    embed: Callable[[Sequence[str]], np.ndarray],
    embedder: str,
) -> dict[str, float]:
    """Embed every distinct sentence of ``passages`` and save the vectors in ``version_dir``,
    with the sentence table (each passage's sentence spans and terms).

    Vectors of sentences that an older saved version of the collection already holds are
    copied, not recomputed, so re-ingesting a few changed articles embeds only theirs.
    Returns counts and seconds (for the ingest report). Idempotent; a directory saved
    before the table existed gets it added.
    """
    started = time.perf_counter()
    final = version_dir / DIRNAME
    if (final / "meta.json").exists():
        return _complete(final, passages)
    split_started = time.perf_counter()
    split = _split_all(passages)
    # At most what the table adds to a save: splitting (which the vectors needed before the
    # table existed, too), stemming, building and writing it.
    table_seconds = time.perf_counter() - split_started
    # A sentence whose key another text shares is not stored: it is embedded on demand.
    by_key = sentence_table.distinct_by_key(
        passage[s:e] for passage, sentences in split for s, e in sentences.spans
    )
    keys = np.array(sorted(by_key), dtype=np.uint64)
    texts = [by_key[int(k)] for k in keys]
    vectors: np.ndarray | None = None
    todo: list[int] = list(range(len(texts)))
    for old in _previous(version_dir, embedder):
        if not todo:
            break
        known = old.lookup([texts[i] for i in todo])
        if known and vectors is None:
            dim = next(iter(known.values())).shape[0]
            vectors = np.zeros((len(texts), dim), dtype=np.float32)
        if vectors is not None:
            for i in todo:
                if texts[i] in known:
                    vectors[i] = known[texts[i]]
        todo = [i for i in todo if texts[i] not in known]
    reused = len(texts) - len(todo)
    for start in range(0, len(todo), _BATCH):
        batch = todo[start : start + _BATCH]
        out = np.asarray(embed([texts[i] for i in batch]), dtype=np.float32)
        if vectors is None:
            vectors = np.zeros((len(texts), out.shape[1]), dtype=np.float32)
        vectors[batch] = out
    if vectors is None:  # no sentences at all
        vectors = np.zeros((0, 0), dtype=np.float32)
    tmp = version_dir / f".tmp-{DIRNAME}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        np.save(tmp / "keys.npy", keys)
        np.save(tmp / "vectors.npy", vectors)
        table_started = time.perf_counter()
        table = sentence_table.build(split)
        sentence_table.write(tmp, table)
        table_seconds += time.perf_counter() - table_started
        seconds = round(time.perf_counter() - started, 3)
        meta = {
            "embedder": embedder,
            "count": len(keys),
            "dim": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
            "embedded": len(todo),
            "reused": reused,
            "build_seconds": seconds,
            "format": FORMAT,
            "passages": len(table["passage_keys.npy"]),
            "table_seconds": round(table_seconds, 3),
        }
        # meta.json last: its presence says the arrays are complete.
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:  # another process saved them first: theirs are as good
            if not (final / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info(
        "sentence vectors for %s: %d sentences (%d embedded, %d reused), %.2f s",
        version_dir,
        len(keys),
        len(todo),
        reused,
        seconds,
    )
    return {
        "sentences": len(keys),
        "embedded": len(todo),
        "passages": len(table["passage_keys.npy"]),
        "seconds": seconds,
    }
