"""Sentence-aware chunks with exact character offsets into the cleaned document."""

from __future__ import annotations

import re
from collections.abc import Iterator

from llama_index.core.node_parser import SentenceSplitter

from dossier.models import Document, Passage
from dossier.text import digest

# The splitter's memory grows much faster than its input on text without sentence
# breaks (one 10 MB run of words took 22 GB), so it never sees more than this many
# characters at once. Ordinary articles are far shorter and are split exactly as before.
MAX_BLOCK_CHARS = 50_000
_PARAGRAPH = re.compile(r"\n\s*\n")


def blocks(text: str, limit: int = MAX_BLOCK_CHARS) -> Iterator[tuple[int, int]]:
    """(start, end) spans of at most ``limit`` characters covering ``text`` in order.

    Cut at a paragraph break where one falls in the second half of the window, else at
    the last whitespace, else (one huge "word") at the limit itself.
    """
    start, n = 0, len(text)
    while n - start > limit:
        window = text[start : start + limit]
        cut = -1
        for m in _PARAGRAPH.finditer(window, limit // 2):
            cut = m.end()
        if cut < 0:
            space = max(window.rfind(" "), window.rfind("\n"), window.rfind("\t"))
            cut = space + 1 if space >= limit // 2 else limit
        yield start, start + cut
        start += cut
    if start < n:
        yield start, n


class Chunker:
    def __init__(self, chunk_size: int, chunk_overlap: int) -> None:
        self.signature = f"sentence-splitter:{chunk_size}:{chunk_overlap}"
        self._splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)

    def chunk(self, doc: Document) -> list[Passage]:
        passages: list[Passage] = []
        for page, block_start, block_end in _regions(doc):
            block = doc.text[block_start:block_end]
            cursor = 0
            for piece in self._splitter.split_text(block):
                position = len(passages)
                start = block.find(piece, cursor)
                if start < 0:
                    # The splitter only trims and joins, so this means a splitter change:
                    # fall back to a search from the top rather than invent offsets.
                    start = block.find(piece)
                if start < 0:
                    raise AssertionError(f"chunk {position} of {doc.source_path} not found in text")
                # Overlapping chunks start after the previous chunk's start.
                cursor = start + 1
                start += block_start
                passages.append(
                    Passage(
                        passage_id=f"{doc.doc_id}-{position:04d}-{digest(piece, size=10)}",
                        doc_id=doc.doc_id,
                        text=piece,
                        start=start,
                        end=start + len(piece),
                        title=doc.title,
                        publisher=doc.publisher,
                        url=doc.url,
                        published=doc.published,
                        author=doc.author,
                        page=page,
                    )
                )
        return passages


def _regions(doc: Document) -> Iterator[tuple[int | None, int, int]]:
    """(page, start, end) of the blocks to split: a paged document's pages are hard edges."""
    if not doc.pages:
        for start, end in blocks(doc.text):
            yield None, start, end
        return
    for span in doc.pages:
        for start, end in blocks(doc.text[span.start : span.end]):
            yield span.page, span.start + start, span.start + end
