"""The ingestion pipeline: idempotent, crash-safe, and honest about what it did.

A run compares the folder with the store's document records:

* unchanged documents (same content hash, all passages present) cost a hash;
* new or changed documents are chunked; only passages whose id (position +
  content hash) is not stored yet are embedded; stale passages are deleted;
* documents gone from the folder are removed, and passages whose document has
  no record (left by a killed run) are swept;
* articles with the same normalised text are stored once and reported.

Work is committed in groups: passages first, then the document records. A
record is the commit marker, so a run killed anywhere leaves a queryable
index, and the next run finishes the job with no duplicates. A run asked to
stop (``should_stop``, an HTTP job's cancel) stops between groups the same way,
and publishes what it committed.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from dossier.errors import DossierError, InvalidInput, NotIndexed
from dossier.index.embeddings import embed_array, embedder_id
from dossier.index.filters import METADATA_VERSION
from dossier.index.lexical import save_current, save_sentence_vectors
from dossier.index.store import PassageStore, StoredDocument, validate_collection_name
from dossier.models import Document, DocumentInfo, PageSpan, Passage
from dossier.settings import Settings
from dossier.text import digest, indexed_text, normalized
from ingest.chunking import Chunker
from ingest.cleaning import Cleaner
from ingest.loaders import RawArticle, discover, load, short_title

log = logging.getLogger(__name__)

PAGE_JOIN = "\n\n"  # between the cleaned pages of a paged source


@dataclass
class IngestReport:
    collection: str
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    # Not read on purpose (too large, a symlink leaving the folder), each with its reason.
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks_embedded: int = 0
    chunks_deleted: int = 0
    chunks_total: int = 0
    seconds: float = 0.0
    embed_seconds: float = 0.0
    # Answer-candidate sentences embedded for the saved sentence vectors, and their time
    # (included in ``seconds``).
    sentences_embedded: int = 0
    sentence_seconds: float = 0.0
    # Stopped between groups on request (``should_stop``): the rest was not written.
    cancelled: bool = False

    @property
    def chunks_per_s(self) -> float:
        return self.chunks_embedded / self.seconds if self.seconds else 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed or self.chunks_deleted)

    def summary(self) -> str:
        return (
            f"{self.collection}: {self.added} added, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.removed} removed, "
            f"{len(self.duplicates)} duplicate, {len(self.failed)} failed, "
            f"{len(self.skipped)} skipped documents; "
            f"{self.chunks_embedded} chunks embedded, {self.chunks_deleted} deleted, "
            f"{self.chunks_total} in the index; {self.seconds:.2f} s, "
            f"{self.chunks_per_s:.1f} chunks/s"
            + (
                f"; {self.sentences_embedded} sentences embedded in {self.sentence_seconds:.2f} s"
                if self.sentences_embedded
                else ""
            )
            + ("; stopped on request before the end" if self.cancelled else "")
        )


@dataclass
class _Planned:
    doc: Document
    passages: list[Passage]
    is_new: bool


def _progress_enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


class Ingestor:
    def __init__(self, settings: Settings, store: PassageStore, embedder: BaseEmbedding) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.cleaner = Cleaner(settings.boilerplate_patterns)
        self.chunker = Chunker(settings.chunk_size, settings.chunk_overlap)
        # Anything that changes passages or vectors is part of every content hash,
        # so changing a setting re-ingests instead of silently mixing old and new. So is
        # what the stores keep beside each passage for filters (METADATA_VERSION): passages
        # stored before it lack it, and the next ingest rewrites them.
        self.signature = (
            f"{self.chunker.signature}|{embedder_id(embedder)}|{settings.boilerplate_patterns}"
            f"|{METADATA_VERSION}"
        )

    # -- reading -----------------------------------------------------------
    def read(self, root: Path, collection: str, path: Path) -> Document:
        raw = load(path, self.settings.ingest_max_file_bytes)
        rel = path.relative_to(root).as_posix() if root.is_dir() else path.name
        folder_tags = []
        if root.is_dir() and len(path.relative_to(root).parts) > 1:
            folder_tags = [path.relative_to(root).parts[0]]  # e.g. the BBC's category folders
        return self.document(collection, rel, raw, folder_tags)

    def document(
        self, collection: str, source_path: str, raw: RawArticle, extra_tags: Sequence[str] = ()
    ) -> Document:
        """A cleaned, hashed Document from a loaded article; its id is its source path."""
        text, pages = self._clean(raw)
        if not text:
            raise InvalidInput(f"{source_path}: no text left after cleaning.")
        rel = source_path
        meta = raw.meta
        tags = meta.get("tags") or []
        if isinstance(tags, str):
            tags = [tags]
        tags = [*tags, *extra_tags]
        published = meta.get("published") or meta.get("date")
        fields = {
            "author": meta.get("author"),
            "publisher": meta.get("publisher"),
            "url": meta.get("url"),
            "published": str(published) if published is not None else None,
            "language": meta.get("language"),
        }
        return Document(
            doc_id=digest(collection, rel),
            collection=collection,
            source_path=rel,
            title=short_title(raw.title),
            text=text,
            content_hash=digest(
                self.signature,
                short_title(raw.title),
                text,
                repr(sorted(fields.items())),
                repr(tags),
                repr(pages),
                size=32,
            ),
            tags=tuple(str(t) for t in tags),
            publisher=_opt_str(fields["publisher"]),
            url=_opt_str(fields["url"]),
            published=_opt_str(fields["published"]),
            language=_opt_str(fields["language"]),
            author=_opt_str(fields["author"]),
            pages=pages,
        )

    def _clean(self, raw: RawArticle) -> tuple[str, tuple[PageSpan, ...]]:
        """The cleaned text, and for a paged source where each page lies in it.

        Pages are cleaned one by one and joined by a blank line, so every offset of a
        cleaned page is known exactly; a page left empty is not part of the text.
        """
        if raw.pages is None:
            return self.cleaner.clean(raw.text), ()
        parts: list[str] = []
        spans: list[PageSpan] = []
        offset = 0
        for number, page in enumerate(raw.pages, start=1):
            cleaned = self.cleaner.clean(page)
            if not cleaned:
                continue
            if parts:
                offset += len(PAGE_JOIN)
            spans.append(PageSpan(number, offset, offset + len(cleaned)))
            parts.append(cleaned)
            offset += len(cleaned)
        return PAGE_JOIN.join(parts), tuple(spans)

    # -- the run -----------------------------------------------------------
    def ingest(self, root: Path, collection: str) -> IngestReport:
        started = time.perf_counter()
        validate_collection_name(collection)
        if not root.exists():
            raise InvalidInput(f"{root} does not exist.")
        report = IngestReport(collection=collection)
        self.store.open_collection(collection, embedder_id(self.embedder), create=True)

        found = discover(root)
        for where, why in found.skipped:
            log.warning("skipped %s: %s", where, why)
        report.skipped.extend(found.skipped)
        docs: list[Document] = []
        for path in found.files:
            try:
                docs.append(self.read(root, collection, path))
            except NotIndexed as exc:
                log.warning("skipped %s", exc)
                report.skipped.append((str(path), str(exc)))
            except (DossierError, OSError) as exc:
                log.error("failed %s: %s", path, exc)
                report.failed.append((str(path), str(exc)))
        return self.sync(collection, docs, report, remove_missing=True, started=started)

    def upsert(
        self,
        collection: str,
        docs: Sequence[Document],
        report: IngestReport | None = None,
        progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> IngestReport:
        """Add or update these documents, leaving the collection's others alone.

        ``report`` may carry failures found before (files that did not parse);
        ``progress`` is called with the number of documents each step finished;
        ``should_stop`` is asked before each group, and a True ends the run there with
        ``report.cancelled`` set (the groups committed before stay, and are published).
        """
        started = time.perf_counter()
        validate_collection_name(collection)
        report = report or IngestReport(collection=collection)
        self.store.open_collection(collection, embedder_id(self.embedder), create=True)
        return self.sync(
            collection,
            docs,
            report,
            remove_missing=False,
            started=started,
            progress=progress,
            should_stop=should_stop,
        )

    def sync(
        self,
        collection: str,
        docs: Sequence[Document],
        report: IngestReport,
        *,
        remove_missing: bool,
        started: float,
        progress: Callable[[int], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> IngestReport:
        """Make the store hold ``docs``; with ``remove_missing``, only them (a folder sync)."""
        canonical, duplicates = self._dedupe(docs)
        report.duplicates = [(d.source_path, canonical[c].source_path) for d, c in duplicates]

        records = self.store.documents(collection)
        by_doc: dict[str, set[str]] = {}
        for pid, doc_id in self.store.passage_refs(collection).items():
            by_doc.setdefault(doc_id, set()).add(pid)
        present = {doc_id: len(pids) for doc_id, pids in by_doc.items()}
        wanted = {d.doc_id for d in canonical.values()}
        gone = [doc_id for doc_id in records if doc_id not in wanted] if remove_missing else []
        # Passages with no record and no document to come are leftovers of a killed run.
        orphans = [doc_id for doc_id in present if doc_id not in records and doc_id not in wanted]
        if gone or orphans:
            self.store.delete_documents(collection, [*gone, *orphans])
            report.removed = len(gone)
            report.chunks_deleted += sum(present.get(d, 0) for d in [*gone, *orphans])

        dup_paths: dict[str, list[str]] = {}
        for dup, canon_hash in duplicates:
            dup_paths.setdefault(canonical[canon_hash].doc_id, []).append(dup.source_path)

        todo: list[tuple[Document, bool]] = []
        for doc in canonical.values():
            record = records.get(doc.doc_id)
            if record is not None and not remove_missing and record.duplicates:
                # An upsert sees only its batch: aliases found by earlier runs stay.
                dup_paths[doc.doc_id] = sorted({*record.duplicates, *dup_paths.get(doc.doc_id, [])})
            aliases = tuple(dup_paths.get(doc.doc_id, ()))
            if (
                record is not None
                and record.content_hash == doc.content_hash
                and present.get(doc.doc_id, 0) == record.chunks
                and record.duplicates == aliases
            ):
                report.unchanged += 1
                continue
            todo.append((doc, record is None))

        if progress is not None:
            progress(len(docs) - len(todo))  # unchanged and duplicate documents are done
        with _bar(len(todo), collection, progress) as bar:
            self._run_groups(collection, todo, by_doc, dup_paths, report, bar, should_stop)
        self._save_lexical(collection, report.changed, report)
        report.chunks_total = (
            len(self.store.passage_refs(collection)) if report.changed else sum(present.values())
        )
        report.seconds = time.perf_counter() - started
        log.info("ingest %s", report.summary())
        return report

    def _save_lexical(self, collection: str, changed: bool, report: IngestReport) -> None:
        """Save the BM25 index and sentence vectors of the new version, then publish it.

        In this order, a server that sees the new version finds its index (and the
        vectors) ready to map instead of rebuilding them. An unchanged collection gets
        them saved if it has none yet (e.g. it was ingested before they were saved).
        """
        uid, version = self.store.version_tag(collection)
        s = self.settings
        if changed:
            version += 1
        path = save_current(
            self.store, s.lexical_path, collection, k1=s.bm25_k1, b=s.bm25_b, tag=(uid, version)
        )
        if s.sentence_vectors:
            stats = save_sentence_vectors(
                path, lambda texts: embed_array(self.embedder, texts), embedder_id(self.embedder)
            )
            report.sentences_embedded = int(stats["embedded"])
            report.sentence_seconds = stats["seconds"]
        if changed:
            self.store.bump_version(collection)

    def _dedupe(
        self, docs: Sequence[Document]
    ) -> tuple[dict[str, Document], list[tuple[Document, str]]]:
        canonical: dict[str, Document] = {}
        duplicates: list[tuple[Document, str]] = []
        for doc in sorted(docs, key=lambda d: d.source_path):
            key = digest(normalized(doc.text), size=32)
            if key in canonical:
                duplicates.append((doc, key))
            else:
                canonical[key] = doc
        return canonical, duplicates

    def _groups(
        self, todo: Sequence[tuple[Document, bool]], report: IngestReport
    ) -> Iterator[list[_Planned]]:
        group: list[_Planned] = []
        size = 0
        for doc, is_new in todo:
            try:
                passages = self.chunker.chunk(doc)
            except Exception as exc:  # one bad document must not end everyone else's run
                log.exception("chunking %s failed", doc.source_path)
                report.failed.append((doc.source_path, f"chunking failed: {exc}"))
                continue
            if not passages:
                report.failed.append((doc.source_path, "no passages after chunking"))
                continue
            item = _Planned(doc, passages, is_new)
            group.append(item)
            size += len(item.passages)
            if size >= self.settings.ingest_group_chunks:
                yield group
                group, size = [], 0
        if group:
            yield group

    def _run_groups(
        self,
        collection: str,
        todo: Sequence[tuple[Document, bool]],
        by_doc: dict[str, set[str]],
        dup_paths: dict[str, list[str]],
        report: IngestReport,
        bar: _Bar,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        """Embed group n while group n+1 is chunked and group n-1 is written.

        onnxruntime releases the GIL while it computes, so chunking (Python) and
        Chroma writes overlap with embedding instead of adding to it. Groups are
        still written one at a time and in order, each passages-then-records.
        A stop request is honoured before a group is embedded: the write under way
        finishes, so every document is either fully committed or not touched.
        """
        groups = self._groups(todo, report)
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="ingest") as pool:
            upcoming: Future[list[_Planned] | None] = pool.submit(next, groups, None)
            writing: Future[None] | None = None
            while (group := upcoming.result()) is not None:
                if should_stop is not None and should_stop():
                    report.cancelled = True
                    log.info("stopping %s on request before the next group", collection)
                    break
                upcoming = pool.submit(next, groups, None)
                stored = {p.doc.doc_id: by_doc.get(p.doc.doc_id, set()) for p in group}
                missing = [
                    ps
                    for p in group
                    for ps in p.passages
                    if ps.passage_id not in stored[p.doc.doc_id]
                ]
                t0 = time.perf_counter()
                vectors = embed_array(
                    self.embedder, [indexed_text(ps.title, ps.text) for ps in missing]
                )
                report.embed_seconds += time.perf_counter() - t0
                if writing is not None:
                    writing.result()  # surfaces a failed write before going on
                writing = pool.submit(
                    self._write_group,
                    collection,
                    group,
                    stored,
                    missing,
                    vectors,
                    dup_paths,
                    report,
                )
                bar.update(len(group))
            if writing is not None:
                writing.result()

    def _write_group(
        self,
        collection: str,
        group: list[_Planned],
        stored: dict[str, set[str]],
        missing: list[Passage],
        vectors: np.ndarray,
        dup_paths: dict[str, list[str]],
        report: IngestReport,
    ) -> None:
        self.store.put_passages(collection, missing, vectors)
        report.chunks_embedded += len(missing)

        keep = {ps.passage_id for p in group for ps in p.passages}
        stale = [pid for ids in stored.values() for pid in ids if pid not in keep]
        self.store.delete_passages(collection, stale)
        report.chunks_deleted += len(stale)

        fresh = dict(zip((ps.passage_id for ps in missing), vectors, strict=True))
        kept = [ps for p in group for ps in p.passages if ps.passage_id not in fresh]
        fresh.update(self.store.passage_vectors(collection, [ps.passage_id for ps in kept]))
        # A changed document's unchanged passages keep their vectors but are written again:
        # their metadata (title, date, publisher, the filter keys) may be what changed.
        kept = [ps for ps in kept if ps.passage_id in fresh]
        if kept:
            self.store.put_passages(
                collection, kept, np.stack([fresh[ps.passage_id] for ps in kept])
            )
        centroids = np.stack(
            [_centroid([fresh[ps.passage_id] for ps in p.passages]) for p in group]
        )
        self.store.put_documents(
            collection,
            [
                StoredDocument(
                    info=DocumentInfo(
                        doc_id=p.doc.doc_id,
                        collection=collection,
                        title=p.doc.title,
                        source_path=p.doc.source_path,
                        content_hash=p.doc.content_hash,
                        chunks=len(p.passages),
                        publisher=p.doc.publisher,
                        url=p.doc.url,
                        published=p.doc.published,
                        language=p.doc.language,
                        author=p.doc.author,
                        pages=p.doc.pages,
                        tags=p.doc.tags,
                        duplicates=tuple(dup_paths.get(p.doc.doc_id, ())),
                    ),
                    text=p.doc.text,
                )
                for p in group
            ],
            centroids,
        )
        for p in group:
            if p.is_new:
                report.added += 1
            else:
                report.updated += 1
        log.info(
            "committed %d documents (%d chunks embedded so far)",
            len(group),
            report.chunks_embedded,
        )


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)


def _centroid(vectors: Sequence[np.ndarray]) -> np.ndarray:
    mean = np.asarray(np.mean(np.stack(vectors), axis=0), dtype=np.float32)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm else mean


class _Bar:
    """tqdm on a terminal; silent in CI and in pipes, where the summary line is enough.

    ``progress`` (an HTTP job's counter) hears of every step either way.
    """

    def __init__(
        self, total: int, collection: str, progress: Callable[[int], None] | None = None
    ) -> None:
        self._progress = progress
        self._tqdm = None
        if _progress_enabled() and total:
            from tqdm import tqdm

            self._tqdm = tqdm(
                total=total, unit="doc", desc=f"ingest {collection}", dynamic_ncols=True
            )

    def update(self, n: int) -> None:
        if self._progress is not None:
            self._progress(n)
        if self._tqdm is not None:
            self._tqdm.update(n)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._tqdm is not None:
            self._tqdm.close()


def _bar(total: int, collection: str, progress: Callable[[int], None] | None = None) -> _Bar:
    return _Bar(total, collection, progress)
