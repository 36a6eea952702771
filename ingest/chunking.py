"""Sentence-aware chunks with exact character offsets into the cleaned document."""

from __future__ import annotations

from llama_index.core.node_parser import SentenceSplitter

from dossier.models import Document, Passage
from dossier.text import digest


class Chunker:
    def __init__(self, chunk_size: int, chunk_overlap: int) -> None:
        self.signature = f"sentence-splitter:{chunk_size}:{chunk_overlap}"
        self._splitter = SentenceSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)

    def chunk(self, doc: Document) -> list[Passage]:
        passages: list[Passage] = []
        cursor = 0
        for position, piece in enumerate(self._splitter.split_text(doc.text)):
            start = doc.text.find(piece, cursor)
            if start < 0:
                # The splitter only trims and joins, so this means a splitter change:
                # fall back to a search from the top rather than invent offsets.
                start = doc.text.find(piece)
            if start < 0:
                raise AssertionError(f"chunk {position} of {doc.source_path} not found in text")
            end = start + len(piece)
            # Overlapping chunks start after the previous chunk's start.
            cursor = start + 1
            passages.append(
                Passage(
                    passage_id=f"{doc.doc_id}-{position:04d}-{digest(piece, size=10)}",
                    doc_id=doc.doc_id,
                    text=piece,
                    start=start,
                    end=end,
                    title=doc.title,
                    publisher=doc.publisher,
                    url=doc.url,
                    published=doc.published,
                )
            )
        return passages
