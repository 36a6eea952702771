"""One contract for every store backend: each name in ``STORES`` that runs in-process.

``chroma-http`` is the same ChromaStore class over a client; tests/test_chroma_server.py
runs it against a real ``chroma run`` server.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from dossier.errors import CollectionNotFound, DocumentNotFound, EmbedderMismatch, InvalidInput
from dossier.index.filters import PassageFilter
from dossier.index.store import PassageStore, StoredDocument
from dossier.index.stores import STORES, build_store
from dossier.models import DocumentInfo, Passage
from tests.conftest import make_settings

BACKENDS = ["chroma-persistent", "memory"]
EMB = "test-embedder"


def test_every_in_process_backend_is_under_contract() -> None:
    assert set(STORES) - set(BACKENDS) == {"chroma-http"}


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PassageStore]:
    yield build_store(make_settings(tmp_path, store=request.param))


def _vec(*xs: float) -> np.ndarray:
    v = np.zeros(8, dtype=np.float32)
    v[: len(xs)] = xs
    return v / np.linalg.norm(v)


def _passage(doc: str, i: int, text: str) -> Passage:
    return Passage(f"{doc}-{i}", doc, text, i * 10, i * 10 + len(text), f"Title {doc}")


def _doc(doc: str, chunks: int, content_hash: str = "h1") -> StoredDocument:
    info = DocumentInfo(
        doc_id=doc,
        collection="col",
        title=f"Title {doc}",
        source_path=f"{doc}.md",
        content_hash=content_hash,
        chunks=chunks,
        publisher="Wire",
        url=None,
        published="2024-01-02",
        language=None,
        tags=("a", "b"),
        duplicates=("copy.md",),
    )
    return StoredDocument(info=info, text=f"text of {doc}")


def _fill(store: PassageStore) -> None:
    store.open_collection("col", EMB, create=True)
    passages = [_passage("d1", 0, "alpha"), _passage("d1", 1, "beta"), _passage("d2", 0, "gamma")]
    vectors = np.stack([_vec(1, 0), _vec(0.8, 0.6), _vec(0, 1)])
    store.put_passages("col", passages, vectors)
    store.put_documents("col", [_doc("d1", 2), _doc("d2", 1)], np.stack([_vec(1), _vec(0, 1)]))


def test_collections_are_created_listed_and_dropped(store: PassageStore) -> None:
    with pytest.raises(CollectionNotFound):
        store.open_collection("col", EMB)
    _fill(store)
    (info,) = store.list_collections()
    assert (info.name, info.documents, info.chunks, info.embedder) == ("col", 2, 3, EMB)
    store.open_collection("col", EMB)  # exists now
    with pytest.raises(EmbedderMismatch, match="other"):
        store.open_collection("col", "other")
    store.drop_collection("col")
    store.drop_collection("col")  # idempotent
    assert store.list_collections() == []
    with pytest.raises(CollectionNotFound):
        store.documents("col")


def test_bad_collection_names_are_refused(store: PassageStore) -> None:
    for bad in ("A", "Bad Name", "x", "a..b", "ends__docs"):
        with pytest.raises(InvalidInput):
            store.open_collection(bad, EMB, create=True)


def test_documents_round_trip_and_delete_with_their_passages(store: PassageStore) -> None:
    _fill(store)
    docs = store.documents("col")
    assert set(docs) == {"d1", "d2"}
    assert docs["d1"] == _doc("d1", 2).info
    assert store.get_document("col", "d2").text == "text of d2"
    with pytest.raises(DocumentNotFound):
        store.get_document("col", "nope")
    store.put_documents("col", [_doc("d1", 2, "h2")], np.stack([_vec(1)]))  # upsert
    assert store.documents("col")["d1"].content_hash == "h2"
    store.delete_documents("col", ["d1"])
    assert set(store.documents("col")) == {"d2"}
    assert store.passage_refs("col") == {"d2-0": "d2"}


def test_passages_vectors_and_nearest_neighbours(store: PassageStore) -> None:
    _fill(store)
    assert store.passage_refs("col") == {"d1-0": "d1", "d1-1": "d1", "d2-0": "d2"}
    assert {p.passage_id: p.text for p in store.all_passages("col")} == {
        "d1-0": "alpha",
        "d1-1": "beta",
        "d2-0": "gamma",
    }
    vecs = store.passage_vectors("col", ["d1-1", "missing"])
    assert set(vecs) == {"d1-1"}
    np.testing.assert_allclose(vecs["d1-1"], _vec(0.8, 0.6), atol=1e-6)

    hits = store.query("col", _vec(1, 0.1), 2)
    assert [p.passage_id for p, _ in hits] == ["d1-0", "d1-1"]
    assert hits[0][1] > hits[1][1] and abs(hits[0][1] - 0.995) < 0.01
    assert len(store.query("col", _vec(1), 10)) == 3
    p0 = hits[0][0]
    assert (p0.doc_id, p0.start, p0.end, p0.title) == ("d1", 0, 5, "Title d1")

    store.delete_passages("col", ["d1-0"])
    assert "d1-0" not in store.passage_refs("col")
    store.put_passages("col", [_passage("d1", 1, "beta2")], np.stack([_vec(0, 0, 1)]))
    assert {p.passage_id: p.text for p in store.all_passages("col")}["d1-1"] == "beta2"


def test_version_is_per_collection_and_bumps(store: PassageStore) -> None:
    _fill(store)
    store.open_collection("other", EMB, create=True)
    v = store.version("col")
    assert store.bump_version("col") == v + 1 == store.version("col")
    assert store.version("other") == 0


def test_empty_collection_queries_empty(store: PassageStore) -> None:
    store.open_collection("col", EMB, create=True)
    assert store.query("col", _vec(1), 5) == []
    assert store.all_passages("col") == [] and store.documents("col") == {}


def test_queries_see_the_stores_own_writes_at_once(store: PassageStore) -> None:
    # The embedded store reuses a collection's handle and passage count between queries;
    # its own writes (and a drop and re-create) must not be answered from the old ones.
    _fill(store)
    assert len(store.query("col", _vec(1), 10)) == 3
    store.put_passages("col", [_passage("d3", 0, "delta")], np.stack([_vec(0, 0, 1)]))
    assert len(store.query("col", _vec(1), 10)) == 4
    store.delete_passages("col", ["d3-0", "d2-0"])
    assert {p.passage_id for p, _ in store.query("col", _vec(1), 10)} == {"d1-0", "d1-1"}
    store.delete_documents("col", ["d1"])
    assert store.query("col", _vec(1), 10) == []
    store.drop_collection("col")
    store.open_collection("col", EMB, create=True)
    store.put_passages("col", [_passage("d9", 0, "omega")], np.stack([_vec(1)]))
    assert [p.passage_id for p, _ in store.query("col", _vec(1), 10)] == ["d9-0"]


# -- metadata filters: applied in the query, so k still come back when k passages match --


def _dated(doc: str, i: int, published: str | None, publisher: str | None) -> Passage:
    return Passage(
        f"{doc}-{i}",
        doc,
        f"{doc} passage {i}",
        i * 10,
        i * 10 + 12,
        f"Title {doc}",
        publisher=publisher,
        published=published,
    )


def _fill_dated(store: PassageStore) -> dict[str, np.ndarray]:
    """Four documents, three passages each; the undated one is nearest to every query."""
    store.open_collection("col", EMB, create=True)
    specs = {
        "jan": ("2024-01-15", "Wire"),
        "feb": ("2024-02-01T09:30:00Z", "Daily Planet"),
        "mar": ("2024-03-31", "wire"),
        "undated": (None, "Wire"),
    }
    passages, vectors = [], []
    for n, (doc, (published, publisher)) in enumerate(specs.items()):
        for i in range(3):
            passages.append(_dated(doc, i, published, publisher))
            # Undated first, then by document: every filter's best hits are not the
            # unfiltered best hits, so a post-filtered top k would come back short.
            vectors.append(_vec(1.0, 0.1 * (3 - n) if doc != "undated" else 1.0, 0.01 * i))
    store.put_passages("col", passages, np.stack(vectors))
    return {"q": _vec(1, 1)}


def _docs_of(hits: list[tuple[Passage, float]]) -> set[str]:
    return {p.doc_id for p, _ in hits}


def test_filter_by_doc_ids(store: PassageStore) -> None:
    q = _fill_dated(store)["q"]
    hits = store.query("col", q, 10, PassageFilter(doc_ids=("jan", "mar")))
    assert _docs_of(hits) == {"jan", "mar"} and len(hits) == 6
    sims = [s for _, s in hits]
    assert sims == sorted(sims, reverse=True)


def test_filter_date_bounds_are_inclusive_and_undated_never_match(store: PassageStore) -> None:
    q = _fill_dated(store)["q"]
    both = PassageFilter(published_after=date(2024, 1, 15), published_before=date(2024, 2, 1))
    assert _docs_of(store.query("col", q, 10, both)) == {"jan", "feb"}  # a datetime is its day
    after = PassageFilter(published_after=date(2024, 3, 31))
    assert _docs_of(store.query("col", q, 10, after)) == {"mar"}
    before = PassageFilter(published_before=date(2024, 1, 14))
    assert store.query("col", q, 10, before) == []
    # The undated document is the nearest, and no date range includes it.
    wide = PassageFilter(published_after=date(1900, 1, 1))
    assert _docs_of(store.query("col", q, 20, wide)) == {"jan", "feb", "mar"}


def test_filter_by_publisher_ignores_case(store: PassageStore) -> None:
    q = _fill_dated(store)["q"]
    hits = store.query("col", q, 20, PassageFilter(publisher="WIRE"))
    assert _docs_of(hits) == {"jan", "mar", "undated"}
    assert _docs_of(store.query("col", q, 20, PassageFilter(publisher="daily planet"))) == {"feb"}
    assert store.query("col", q, 20, PassageFilter(publisher="Nobody")) == []


def test_filters_combine_and_k_is_honoured(store: PassageStore) -> None:
    q = _fill_dated(store)["q"]
    combo = PassageFilter(
        doc_ids=("jan", "feb", "undated"), publisher="wire", published_before=date(2024, 12, 31)
    )
    assert _docs_of(store.query("col", q, 10, combo)) == {"jan"}
    # The unfiltered top 2 are both undated; filtered, 2 matching ones still come back.
    assert _docs_of(store.query("col", q, 2)) == {"undated"}
    dated = PassageFilter(published_after=date(2024, 1, 1))
    hits = store.query("col", q, 2, dated)
    assert len(hits) == 2 and _docs_of(hits) <= {"jan", "feb", "mar"}
    assert len(store.query("col", q, 5, PassageFilter(doc_ids=("feb", "mar")))) == 5
    assert len(store.query("col", q, 10, PassageFilter())) == 10  # an empty filter: none
