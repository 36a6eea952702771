"""The lexical (BM25) index: built by ingestion, saved beside the collection, memory-mapped.

Chroma's local mode has no sparse index, so BM25 is ours. Rebuilding it from every
passage in the store costs seconds per 10k passages and the passages' text in RAM, in
every worker process. Instead ingestion saves it once per collection version::

    DATA_DIR/lexical/<collection>/v<version>-<signature>/
        bm25/              bm25s' saved index: the precomputed score matrix (CSC arrays,
                           .npy, memory-mapped on load) and the vocabulary
        passages.sqlite3   the passages in index order (row i+1 is BM25 document i)
        meta.json          version, passage count, parameters, build time

A directory appears complete or not at all: it is written under a temporary name and
renamed. Readers map the arrays and open the SQLite file read-only, so N workers share
one copy of the pages in the OS cache, and loading takes milliseconds instead of a rebuild.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, overload

import numpy as np

from dossier.index import sentence_table, sentence_vectors
from dossier.index.filters import FilterColumns, PassageFilter, active
from dossier.index.sentence_table import PassageSentences, SentenceTable
from dossier.index.sentence_vectors import SentenceVectors
from dossier.index.store import PassageStore
from dossier.models import Passage
from dossier.text import indexed_text, terms

log = logging.getLogger(__name__)

# Bump when what is saved, or how passages are tokenized, changes: older directories
# then no longer match and are rebuilt instead of being read wrongly.
FORMAT = 3  # 3: passages keep their author and page
KEEP_VERSIONS = 2  # older ones may still be mapped by a worker that has not switched yet
_SENTENCE_CACHE = 50_000  # passages (sentence terms) and terms (idf) memoised per index
# How often a mapped index without sentence vectors looks for them again (a backfill with
# `dossier index-sentences` may add them to a version a server already serves).
_VECTORS_CHECK_S = 10.0


def _quiet_bm25s() -> Any:
    import bm25s

    # bm25s sets its logger to DEBUG with its own handler at import, which would print
    # a line per index build or load into every server log.
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    return bm25s


def signature(uid: str, k1: float, b: float) -> str:
    # The collection's uid: a dropped and re-created collection starts its versions
    # again, and must not pick up the old collection's index.
    return hashlib.sha256(f"{FORMAT}|{uid}|{k1}|{b}".encode()).hexdigest()[:12]


def index_dir(root: Path, collection: str, tag: tuple[str, int], k1: float, b: float) -> Path:
    uid, version = tag
    return root / collection / f"v{version}-{signature(uid, k1, b)}"


class PassageTable(Sequence[Passage]):
    """The passages of one index version, read from SQLite by position, not held in RAM."""

    _COLUMNS = (
        "passage_id, doc_id, text, start, end, title, publisher, url, published, author, page"
    )

    def __init__(self, path: Path, count: int) -> None:
        self.path = path
        self._count = count
        self._local = threading.local()

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            # immutable: the file never changes once renamed into place, so SQLite can skip
            # locking, and a file deleted by a newer ingest stays readable while open.
            db = sqlite3.connect(f"file:{self.path}?mode=ro&immutable=1", uri=True)
            self._local.db = db
        return db

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> Passage: ...

    @overload
    def __getitem__(self, index: slice) -> list[Passage]: ...

    def __getitem__(self, index: int | slice) -> Passage | list[Passage]:
        if isinstance(index, slice):
            return self.many(range(self._count)[index])
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(index)
        return self.many([index])[0]

    def __iter__(self) -> Iterator[Passage]:
        rows = self._db().execute(f"SELECT {self._COLUMNS} FROM passages ORDER BY rowid")
        return (Passage(*row) for row in rows)

    def many(self, positions: Sequence[int]) -> list[Passage]:
        """Passages at these positions, in this order, in one query."""
        if not positions:
            return []
        rowids = [int(i) + 1 for i in positions]
        marks = ",".join("?" * len(rowids))
        rows = self._db().execute(
            f"SELECT rowid, {self._COLUMNS} FROM passages WHERE rowid IN ({marks})", rowids
        )
        by_row = {row[0]: Passage(*row[1:]) for row in rows}
        return [by_row[r] for r in rowids]

    def filter_columns(self) -> FilterColumns:
        """The columns filters are matched on, in index order, without the passages' text."""
        rows = self._db().execute(
            "SELECT doc_id, publisher, published FROM passages ORDER BY rowid"
        )
        return FilterColumns.of(rows)


class DocFreq(Mapping[str, int]):
    """Document frequencies read off the BM25 score matrix: one column per term."""

    def __init__(self, vocab: Mapping[str, int], indptr: np.ndarray) -> None:
        self._vocab = vocab
        self._indptr = indptr

    def __getitem__(self, term: str) -> int:
        col = self._vocab[term]
        return int(self._indptr[col + 1] - self._indptr[col])

    def __contains__(self, term: object) -> bool:
        return term in self._vocab and term != ""

    def __iter__(self) -> Iterator[str]:
        return (t for t in self._vocab if t != "")

    def __len__(self) -> int:
        return sum(1 for _ in self)


class LexicalIndex:
    """A BM25 index over one collection version, plus the document frequencies the answerer uses."""

    def __init__(
        self,
        version: int,
        passages: Sequence[Passage],
        bm25: Any,
        df: Mapping[str, int],
        path: Path | None = None,
    ) -> None:
        self.version = version
        self.passages = passages
        self.bm25 = bm25
        self.df = df
        self.path = path  # where it was loaded from; None for one built in memory
        self._sentences: dict[str, PassageSentences] = {}
        self._idf: dict[str, float] = {}
        self._vectors: SentenceVectors | None = None
        self._vectors_checked = -math.inf
        # Read the sentence table saved with this version (off: split every passage on
        # demand, as before it existed; for comparison, DOSSIER_STORED_SENTENCES).
        self.stored_sentences = True
        self._table: SentenceTable | None = None
        self._table_checked = -math.inf
        self._filter_columns: FilterColumns | None = None

    @property
    def size(self) -> int:
        return len(self.passages)

    def idf(self, term: str) -> float:
        # BM25's idf, so coverage and ranking agree on what a rare word is. Memoised: the
        # answerer asks for the same few terms thousands of times per question, and a
        # mapped df costs a vocabulary lookup plus an array read.
        cached = self._idf.get(term)
        if cached is None:
            n = self.size
            df = self.df.get(term, 0)
            cached = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
            if len(self._idf) >= _SENTENCE_CACHE:  # query words are unbounded
                self._idf.clear()
            self._idf[term] = cached
        return cached

    def sentence_vectors(self, embedder: str) -> SentenceVectors | None:
        """The sentence vectors saved with this version (see dossier/sentence_vectors.py)."""
        if self._vectors is not None or self.path is None:
            return self._vectors
        now = time.monotonic()
        if now - self._vectors_checked >= _VECTORS_CHECK_S:
            self._vectors_checked = now
            self._vectors = sentence_vectors.load(self.path, embedder)
        return self._vectors

    def sentence_table(self) -> SentenceTable | None:
        """The sentence spans and terms saved with this version (dossier/sentence_table.py)."""
        if not self.stored_sentences or self.path is None:
            return None
        now = time.monotonic()
        if self._table is None and now - self._table_checked >= _VECTORS_CHECK_S:
            self._table_checked = now
            self._table = sentence_vectors.load_table(self.path)
        return self._table

    def passage_sentences(self, passage: Passage) -> PassageSentences:
        """The passage's sentence spans and each sentence's terms: saved at ingest, or
        computed on first use; kept per index version (retrieval's re-scoring and the
        answerer ask for the same passages)."""
        cached = self._sentences.get(passage.passage_id)
        if cached is None:
            table = self.sentence_table()
            saved = table.get(passage.text) if table is not None else None
            cached = saved if saved is not None else sentence_table.split(passage.text)
            if len(self._sentences) >= _SENTENCE_CACHE:
                self._sentences.clear()  # bounded: a long-running worker must not grow forever
            self._sentences[passage.passage_id] = cached
        return cached

    def filter_columns(self) -> FilterColumns:
        """doc_id, publisher and day per position, read once per index version (a filtered
        query then costs a few vectorised comparisons, not a pass over the passages)."""
        if self._filter_columns is None:
            if isinstance(self.passages, PassageTable):
                self._filter_columns = self.passages.filter_columns()
            else:
                self._filter_columns = FilterColumns.of_passages(self.passages)
        return self._filter_columns

    def search(
        self, query_terms: Sequence[str], k: int, filters: PassageFilter | None = None
    ) -> list[tuple[Passage, float]]:
        """The top k passages by BM25 with a positive score, among those ``filters`` matches.

        Filtered passages are masked out of the scores before the top k is taken, so k
        come back whenever k matching passages contain a query term.
        """
        known = [t for t in query_terms if t in self.df]
        if self.bm25 is None or not known or not self.size:
            return []
        k = min(k, self.size)
        wanted = active(filters)
        mask: np.ndarray | None = None
        if wanted is not None:
            allowed = wanted.mask(self.filter_columns())
            if not allowed.any():
                return []
            # A zero weight zeroes the score, and only positive scores are returned below.
            mask = allowed.astype(np.float32)
        docs, scores = self.bm25.retrieve(
            [known], k=k, show_progress=False, n_threads=1, weight_mask=mask
        )
        hits = [(int(i), float(s)) for i, s in zip(docs[0], scores[0], strict=True) if s > 0]
        if isinstance(self.passages, PassageTable):
            found = self.passages.many([i for i, _ in hits])
        else:
            found = [self.passages[i] for i, _ in hits]
        return [(p, s) for p, (_, s) in zip(found, hits, strict=True)]


def tokenize(
    passages: Sequence[Passage], known: Mapping[str, tuple[str, str, str]] | None = None
) -> list[list[str]]:
    """Each passage's BM25 terms; reused from ``known`` (id -> title, text, terms) when
    the passage is unchanged, since tokenizing is most of the cost of an index."""
    out = []
    for p in passages:
        prior = known.get(p.passage_id) if known else None
        if prior is not None and prior[0] == p.title and prior[1] == p.text:
            out.append(prior[2].split(" ") if prior[2] else [])
        else:
            out.append(terms(indexed_text(p.title, p.text)))
    return out


def build(
    passages: Sequence[Passage],
    version: int,
    *,
    k1: float,
    b: float,
    tokens: list[list[str]] | None = None,
) -> tuple[LexicalIndex, Any]:
    """An in-memory index over ``passages`` (and the bm25s object, for saving)."""
    tokens = tokenize(passages) if tokens is None else tokens
    bm25 = None
    if passages:
        bm25 = _quiet_bm25s().BM25(k1=k1, b=b)
        bm25.index(tokens, show_progress=False)
    df: dict[str, int] = {}
    for toks in tokens:
        for t in set(toks):
            df[t] = df.get(t, 0) + 1
    return LexicalIndex(version=version, passages=list(passages), bm25=bm25, df=df), bm25


def save(
    root: Path,
    collection: str,
    tag: tuple[str, int],
    passages: Sequence[Passage],
    *,
    k1: float,
    b: float,
) -> Path:
    """Build the index for ``passages`` and save it under ``tag`` (uid, version).

    Terms of passages that the newest saved version already holds are reused.
    """
    started = time.perf_counter()
    version = tag[1]
    final = index_dir(root, collection, tag, k1, b)
    if (final / "meta.json").exists():
        return final
    tokens = tokenize(passages, _saved_terms(root, collection))
    _, bm25 = build(passages, version, k1=k1, b=b, tokens=tokens)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir(parents=True)
    try:
        if bm25 is not None:
            bm25.save(str(tmp / "bm25"))
        _write_passages(tmp / "passages.sqlite3", passages, tokens)
        meta = {
            "collection": collection,
            "version": version,
            "uid": tag[0],
            "passages": len(passages),
            "k1": k1,
            "b": b,
            "format": FORMAT,
            "build_seconds": round(time.perf_counter() - started, 3),
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:  # another process saved the same version first: theirs is as good
            if not (final / "meta.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    prune(root, collection, keep=KEEP_VERSIONS)
    log.info(
        "BM25 index for %s v%d saved: %d passages, %.2f s",
        collection,
        version,
        len(passages),
        time.perf_counter() - started,
    )
    return final


def _saved_terms(root: Path, collection: str) -> dict[str, tuple[str, str, str]]:
    """id -> (title, text, terms) from the newest saved version, for reuse; {} if none."""
    folder = root / collection
    if not folder.is_dir():
        return {}
    saved = [d for d in folder.iterdir() if (d / "meta.json").exists()]
    if not saved:
        return {}
    newest = max(saved, key=lambda d: d.stat().st_mtime)
    try:
        db = sqlite3.connect(f"file:{newest / 'passages.sqlite3'}?mode=ro&immutable=1", uri=True)
        try:
            rows = db.execute("SELECT passage_id, title, text, terms FROM passages")
            return {pid: (title, text, toks) for pid, title, text, toks in rows}
        finally:
            db.close()
    except sqlite3.Error as exc:  # an older format or a damaged file: tokenize afresh
        log.info("not reusing terms from %s: %s", newest, exc)
        return {}


def _write_passages(path: Path, passages: Sequence[Passage], tokens: list[list[str]]) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(
            "CREATE TABLE passages (passage_id TEXT, doc_id TEXT, text TEXT, start INTEGER,"
            " end INTEGER, title TEXT, publisher TEXT, url TEXT, published TEXT, author TEXT,"
            " page INTEGER, terms TEXT)"
        )
        db.executemany(
            "INSERT INTO passages VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (_row(p, toks) for p, toks in zip(passages, tokens, strict=True)),
        )
        db.commit()
    finally:
        db.close()


def _row(p: Passage, tokens: list[str]) -> tuple[object, ...]:
    # Terms are words without spaces, so one string per passage keeps them compactly.
    toks = " ".join(tokens)
    return (
        p.passage_id,
        p.doc_id,
        p.text,
        p.start,
        p.end,
        p.title,
        p.publisher,
        p.url,
        p.published,
        p.author,
        p.page,
        toks,
    )


def load(path: Path) -> LexicalIndex:
    """Map a saved index: the score matrix stays on disk, shared by every process."""
    meta = json.loads((path / "meta.json").read_text())
    count = int(meta["passages"])
    passages = PassageTable(path / "passages.sqlite3", count)
    if not count:
        return LexicalIndex(int(meta["version"]), passages, None, {}, path)
    bm25 = _quiet_bm25s().BM25.load(str(path / "bm25"), mmap=True)
    df = DocFreq(bm25.vocab_dict, bm25.scores["indptr"])
    return LexicalIndex(int(meta["version"]), passages, bm25, df, path)


def prune(root: Path, collection: str, keep: int) -> None:
    """Delete all but the ``keep`` newest saved versions (and temporaries left by a crash)."""
    folder = root / collection
    if not folder.is_dir():
        return
    saved: list[tuple[float, Path]] = []
    for entry in folder.iterdir():
        age = time.time() - entry.stat().st_mtime
        if entry.name.startswith(".tmp-"):
            if age > 3600:  # a build that crashed, not one in progress
                shutil.rmtree(entry, ignore_errors=True)
        elif (entry / "meta.json").exists():
            saved.append((entry.stat().st_mtime, entry))
    # By age, not version number: a re-created collection starts again at version 1.
    for _, entry in sorted(saved, reverse=True)[keep:]:
        # Workers that still map these files keep reading them: unlinking does not take
        # pages away from an open file.
        shutil.rmtree(entry, ignore_errors=True)


class LexicalIndexes:
    """Per process: the current index of each collection, following the store's version.

    The version is read at most every ``check_s`` seconds. A newer version is loaded by the
    request that notices it (milliseconds: files are mapped, not read) while concurrent
    requests keep answering from the old one. A version nobody saved yet (a collection
    ingested by an older Dossier, or a worker on a host without the shared data dir) is
    built in a background thread and saved; the old index serves until it is ready.
    """

    def __init__(
        self,
        store: PassageStore,
        root: Path | None,
        *,
        k1: float,
        b: float,
        check_s: float = 0.5,
        stored_sentences: bool = True,
    ) -> None:
        self.store = store
        self.root = root
        self.k1 = k1
        self.b = b
        self.check_s = check_s
        self.stored_sentences = stored_sentences
        self._current: dict[str, tuple[tuple[str, int], LexicalIndex]] = {}
        self._checked: dict[str, tuple[float, tuple[str, int]]] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._building: set[tuple[str, tuple[str, int]]] = set()
        self._guard = threading.Lock()

    def _lock(self, collection: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(collection, threading.Lock())

    def _tag(self, collection: str) -> tuple[str, int]:
        now = time.monotonic()
        checked = self._checked.get(collection)
        if checked is not None and now - checked[0] < self.check_s:
            return checked[1]
        tag = self.store.version_tag(collection)
        self._checked[collection] = (now, tag)
        return tag

    def forget(self, collection: str) -> None:
        """Drop the mapped index and version check of a deleted collection."""
        with self._guard:
            self._current.pop(collection, None)
            self._checked.pop(collection, None)

    def get(self, collection: str) -> LexicalIndex:
        tag = self._tag(collection)
        current = self._current.get(collection)
        if current is not None and current[0] == tag:
            return current[1]
        lock = self._lock(collection)
        if current is not None:
            if not lock.acquire(blocking=False):
                return current[1]  # another request is switching: answer from the old one
        else:
            lock.acquire()
        try:
            current = self._current.get(collection)
            if current is not None and current[0] == tag:
                return current[1]
            loaded = self._load_saved(collection, tag)
            if loaded is None and current is not None:
                self._build_in_background(collection, tag)
                return current[1]
            if loaded is None:
                loaded = self._build(collection, tag)
            loaded.stored_sentences = self.stored_sentences
            self._current[collection] = (tag, loaded)
            return loaded
        finally:
            lock.release()

    def _load_saved(self, collection: str, tag: tuple[str, int]) -> LexicalIndex | None:
        if self.root is None:
            return None
        path = index_dir(self.root, collection, tag, self.k1, self.b)
        if not (path / "meta.json").exists():
            return None
        t0 = time.perf_counter()
        try:
            index = load(path)
        except (OSError, ValueError, KeyError) as exc:  # damaged: rebuild rather than fail
            log.warning("cannot load the BM25 index at %s (%s); rebuilding it", path, exc)
            return None
        log.info(
            "BM25 index for %s v%d loaded in %.3f s (%d passages)",
            collection,
            tag[1],
            time.perf_counter() - t0,
            index.size,
        )
        return index

    def _build(self, collection: str, tag: tuple[str, int]) -> LexicalIndex:
        """Build from the store's passages; saved, then mapped, when there is a data dir."""
        t0 = time.perf_counter()
        passages = self.store.all_passages(collection)
        if self.root is not None:
            try:
                return load(save(self.root, collection, tag, passages, k1=self.k1, b=self.b))
            except OSError as exc:  # e.g. a read-only data dir: serve from memory
                log.warning("cannot save the BM25 index for %s: %s", collection, exc)
        index, _ = build(passages, tag[1], k1=self.k1, b=self.b)
        log.info(
            "BM25 index for %s v%d built in %.2f s (%d passages)",
            collection,
            tag[1],
            time.perf_counter() - t0,
            len(passages),
        )
        return index

    def _build_in_background(self, collection: str, tag: tuple[str, int]) -> None:
        with self._guard:
            if (collection, tag) in self._building:
                return
            self._building.add((collection, tag))
        log.warning(
            "no saved BM25 index for %s v%d: building it; the previous version answers "
            "until it is ready",
            collection,
            tag[1],
        )

        def run() -> None:
            try:
                index = self._build(collection, tag)
                with self._lock(collection):
                    current = self._current.get(collection)
                    if current is None or current[0][0] != tag[0] or current[0][1] < tag[1]:
                        index.stored_sentences = self.stored_sentences
                        self._current[collection] = (tag, index)
            except Exception:  # logged; the old index keeps serving and the next check retries
                log.exception("building the BM25 index for %s failed", collection)
            finally:
                with self._guard:
                    self._building.discard((collection, tag))

        threading.Thread(target=run, name=f"bm25-{collection}", daemon=True).start()


def save_current(
    store: PassageStore,
    root: Path,
    collection: str,
    *,
    k1: float,
    b: float,
    tag: tuple[str, int] | None = None,
) -> Path:
    """Save the index of ``collection`` as ``tag`` (default: the store's current one)."""
    tag = store.version_tag(collection) if tag is None else tag
    path = index_dir(root, collection, tag, k1, b)
    if (path / "meta.json").exists():
        return path
    return save(root, collection, tag, store.all_passages(collection), k1=k1, b=b)


def save_sentence_vectors(
    path: Path, embed: Callable[[Sequence[str]], np.ndarray], embedder: str
) -> dict[str, float]:
    """Embed and save the sentence vectors of the saved index at ``path`` (idempotent)."""
    meta = json.loads((path / "meta.json").read_text())
    passages = PassageTable(path / "passages.sqlite3", int(meta["passages"]))
    return sentence_vectors.save(path, passages, embed, embedder)
