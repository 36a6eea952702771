"""Metadata filters on retrieval: the domain type, BM25, the engine, and the HTTP API.

The store's side is in the shared contract (tests/test_store_contract.py). Here a small
corpus of four dated articles from two publishers is ingested for real (Chroma on a temp
dir, the hashing embedder, the saved BM25 index) and served on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from dossier.engine import Dossier
from dossier.errors import InvalidInput
from dossier.index import lexical
from dossier.index.filters import METADATA_VERSION, PassageFilter, published_day
from dossier.models import Passage
from dossier.testing import LiveServer
from dossier.text import terms
from ingest.pipeline import Ingestor
from service.app import create_app
from tests.conftest import make_settings

COLLECTION = "harbours"
QUESTION = "Why did the Portmore harbour close?"
ARTICLES = {
    "jan.md": (
        "2024-01-10",
        "Coast Times",
        "Portmore harbour closed by the January storm",
        "The Portmore harbour closed on Monday because a storm broke the sea wall. "
        "Ferries to the islands stopped until the wall was mended.",
    ),
    "mar.md": (
        "2024-03-05T08:00:00Z",
        "Harbour Herald",
        "Portmore harbour closed again by floods",
        "The Portmore harbour closed again in March because the river flooded the quays. "
        "The ferries were cancelled for a week.",
    ),
    "jun.md": (
        "2024-06-20",
        "Coast Times",
        "Portmore harbour closed for dredging",
        "The Portmore harbour closed in June because the channel had to be dredged. "
        "Fishing boats moved to the next port.",
    ),
    "undated.md": (
        None,
        "Harbour Herald",
        "Portmore harbour closed by a strike",
        "The Portmore harbour closed because the dock workers went on strike over pay. "
        "No ship was unloaded for three days.",
    ),
}


def _write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, (published, publisher, title, body) in ARTICLES.items():
        front = [f"title: {title}", f"publisher: {publisher}"]
        if published is not None:
            front.append(f"published: '{published}'")
        (folder / name).write_text(
            "---\n" + "\n".join(front) + f"\n---\n{title}\n\n{body}\n", encoding="utf-8"
        )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Dossier:
    tmp = tmp_path_factory.mktemp("filters")
    settings = make_settings(tmp, embedder="hashing", default_collection=COLLECTION)
    engine = Dossier(settings)
    _write_corpus(tmp / "articles")
    Ingestor(settings, engine.store, engine.embedder).ingest(tmp / "articles", COLLECTION)
    return engine


@pytest.fixture(scope="module")
def ids(engine: Dossier) -> dict[str, str]:
    """Article file name -> doc id."""
    return {d.source_path: d.doc_id for d in engine.documents(COLLECTION)}


@pytest.fixture(scope="module")
def api(engine: Dossier) -> Iterator[httpx.Client]:
    with (
        LiveServer(create_app(engine.settings, engine)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


# -- the domain type ------------------------------------------------------------------


def _p(doc: str, published: str | None, publisher: str | None = "Wire") -> Passage:
    return Passage(f"{doc}-0", doc, "text", 0, 4, "T", publisher=publisher, published=published)


def test_published_day_reads_dates_and_datetimes_only() -> None:
    assert published_day("2024-01-31") == 20240131
    assert published_day("2024-01-31T23:59:59+05:00") == 20240131  # the day as written
    for undated in (None, "", "2024", "31 January 2024", "2024-02-30"):
        assert published_day(undated) is None


def test_passage_filter_matches_inclusive_bounds_and_excludes_undated() -> None:
    jan = PassageFilter(published_after=date(2024, 1, 1), published_before=date(2024, 1, 31))
    assert jan.matches(_p("a", "2024-01-01")) and jan.matches(_p("a", "2024-01-31T10:00"))
    assert not jan.matches(_p("a", "2024-02-01")) and not jan.matches(_p("a", None))
    assert PassageFilter(doc_ids=("a",)).matches(_p("a", None))
    assert not PassageFilter(doc_ids=("a",)).matches(_p("b", None))
    assert PassageFilter(publisher=" wire ").matches(_p("a", None, "WIRE"))
    assert not PassageFilter(publisher="wire").matches(_p("a", None, None))
    assert PassageFilter().is_empty and not jan.is_empty
    assert PassageFilter(doc_ids=("a",), publisher="x").describe() == (
        "doc_ids in ['a'], publisher 'x'"
    )


def test_passage_filter_refuses_what_can_match_nothing() -> None:
    with pytest.raises(InvalidInput, match=r"published_after .* is after"):
        PassageFilter(published_after=date(2024, 2, 1), published_before=date(2024, 1, 1))
    with pytest.raises(InvalidInput, match="doc_ids is empty"):
        PassageFilter(doc_ids=())
    with pytest.raises(InvalidInput, match="blank"):
        PassageFilter(publisher="  ")


# -- BM25 ---------------------------------------------------------------------------


def test_bm25_masks_before_taking_the_top_k(tmp_path: Path) -> None:
    # The best BM25 hits are "hot" passages; a filter on the others must still fill k.
    passages = [
        Passage(f"hot-{i}", "hot", "harbour harbour harbour", 0, 1, "T", published="2024-01-01")
        for i in range(5)
    ] + [
        Passage(f"cold-{i}", "cold", "harbour and more words", 0, 1, "T", published="2023-01-01")
        for i in range(3)
    ]
    built, _ = lexical.build(passages, 1, k1=0.9, b=0.4)
    saved = lexical.load(lexical.save(tmp_path, "col", ("uid", 1), passages, k1=0.9, b=0.4))
    only_cold = PassageFilter(doc_ids=("cold",))
    for index in (built, saved):  # in memory, and mapped from disk (PassageTable)
        assert {p.doc_id for p, _ in index.search(terms("harbour"), 3)} == {"hot"}
        hits = index.search(terms("harbour"), 3, only_cold)
        assert len(hits) == 3 and {p.doc_id for p, _ in hits} == {"cold"}
        early = PassageFilter(published_before=date(2023, 6, 30))
        assert {p.doc_id for p, _ in index.search(terms("harbour"), 10, early)} == {"cold"}
        assert index.search(terms("harbour"), 3, PassageFilter(publisher="nobody")) == []


# -- the engine over a real ingest --------------------------------------------------


def test_search_returns_only_matching_passages_and_still_k(
    engine: Dossier, ids: dict[str, str]
) -> None:
    assert len({sp.passage.doc_id for sp in engine.search(QUESTION, k=4)}) > 1
    only = engine.search(QUESTION, k=3, filters=PassageFilter(doc_ids=(ids["jun.md"],)))
    assert only and {sp.passage.doc_id for sp in only} == {ids["jun.md"]}
    herald = engine.search(QUESTION, k=2, filters=PassageFilter(publisher="harbour herald"))
    assert len(herald) == 2 and {sp.passage.doc_id for sp in herald} == {
        ids["mar.md"],
        ids["undated.md"],
    }


def test_ask_with_a_filter_that_leaves_nothing_refuses_and_says_why(engine: Dossier) -> None:
    answer = engine.ask(QUESTION, filters=PassageFilter(published_after=date(2030, 1, 1)))
    assert answer.refused and answer.passages == [] and answer.citations == []
    assert answer.refusal_reason is not None and "filters" in answer.refusal_reason


def test_ingest_signature_carries_the_metadata_version(engine: Dossier) -> None:
    ingestor = Ingestor(engine.settings, engine.store, engine.embedder)
    assert ingestor.signature.endswith(f"|{METADATA_VERSION}")


def test_a_changed_date_rewrites_the_stored_passages(tmp_path: Path) -> None:
    # Passage ids hash the text only, so a changed date alone used to leave the stored
    # passages with the old one; now a changed document's passages are all written again.
    settings = make_settings(tmp_path, embedder="hashing", default_collection=COLLECTION)
    engine = Dossier(settings)
    folder = tmp_path / "articles"
    _write_corpus(folder)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    ingestor.ingest(folder, COLLECTION)
    path = folder / "undated.md"
    path.write_text(
        path.read_text(encoding="utf-8").replace("---\n", "---\npublished: '2025-05-05'\n", 1),
        encoding="utf-8",
    )
    report = ingestor.ingest(folder, COLLECTION)
    assert report.updated == 1 and report.chunks_embedded == 0  # vectors reused
    may = PassageFilter(published_after=date(2025, 5, 1), published_before=date(2025, 5, 31))
    found = engine.search(QUESTION, k=5, filters=may)
    assert found and {sp.passage.published for sp in found} == {"2025-05-05"}


# -- HTTP -----------------------------------------------------------------------------


def _cited_docs(body: dict[str, Any]) -> set[str]:
    return {c["doc_id"] for c in body["citations"]}


def test_ask_filtered_by_doc_id_answers_only_from_that_document(
    api: httpx.Client, ids: dict[str, str]
) -> None:
    jan = ids["jan.md"]
    r = api.post("/v1/ask", json={"question": QUESTION, "filters": {"doc_ids": [jan]}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refused"] is False, body
    assert _cited_docs(body) == {jan}
    assert {p["doc_id"] for p in body["passages"]} == {jan}


def test_ask_in_a_date_range_cites_only_documents_in_it(
    api: httpx.Client, ids: dict[str, str]
) -> None:
    spring = {"published_after": "2024-02-01", "published_before": "2024-06-20"}
    r = api.post("/v1/ask", json={"question": QUESTION, "filters": spring, "top_k": 10})
    assert r.status_code == 200, r.text
    body = r.json()
    in_range = {ids["mar.md"], ids["jun.md"]}
    assert body["passages"] and {p["doc_id"] for p in body["passages"]} <= in_range
    assert _cited_docs(body) <= in_range
    for cited in body["citations"]:
        assert "2024-02-01" <= cited["published"][:10] <= "2024-06-20"


def test_chat_and_search_take_filters(api: httpx.Client, ids: dict[str, str]) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    herald = {"publisher": "HARBOUR HERALD"}
    r = api.post("/v1/chat", json={"messages": messages, "filters": herald})
    assert r.status_code == 200, r.text
    assert {p["doc_id"] for p in r.json()["passages"]} <= {ids["mar.md"], ids["undated.md"]}

    params: dict[str, Any] = {"q": QUESTION, "k": 5, "doc_ids": [ids["jan.md"], ids["jun.md"]]}
    found = api.get("/v1/search", params=params).json()
    assert {p["doc_id"] for p in found["passages"]} == {ids["jan.md"], ids["jun.md"]}
    dated = api.get("/v1/search", params={"q": QUESTION, "published_before": "2024-01-10"})
    assert {p["doc_id"] for p in dated.json()["passages"]} == {ids["jan.md"]}


def test_a_filter_that_matches_nothing_is_an_honest_refusal(api: httpx.Client) -> None:
    r = api.post("/v1/ask", json={"question": QUESTION, "filters": {"publisher": "Nobody"}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refused"] is True and body["citations"] == [] and body["passages"] == []
    assert "filters" in body["refusal_reason"]


@pytest.mark.parametrize(
    ("method", "kwargs", "needles"),
    [
        ("ask", {"filters": {"published_after": "2024-13-01"}}, ["published_after", "YYYY-MM-DD"]),
        ("ask", {"filters": {"published_before": "last week"}}, ["published_before", "YYYY-MM-DD"]),
        ("ask", {"filters": {"published_after": 1700000000}}, ["published_after", "YYYY-MM-DD"]),
        ("ask", {"filters": {"published_after": "20240101"}}, ["published_after", "YYYY-MM-DD"]),
        (
            "ask",
            {"filters": {"published_after": "2024-03-01", "published_before": "2024-02-01"}},
            ["published_after (2024-03-01) is after published_before (2024-02-01)"],
        ),
        ("ask", {"filters": {"doc_id": ["x"]}}, ["filters.doc_id", "extra"]),
        ("ask", {"filters": {"doc_ids": []}}, ["filters.doc_ids"]),
        ("ask", {"filters": {"publisher": "  "}}, ["filters.publisher"]),
        ("ask", {"filters": "2024"}, ["filters"]),
        ("chat", {"filters": {"published_before": "2024-02-30"}}, ["published_before"]),
        ("search", {"published_after": "yesterday"}, ["published_after", "YYYY-MM-DD"]),
        (
            "search",
            {"published_after": "2024-03-01", "published_before": "2024-02-01"},
            ["published_after", "is after published_before"],
        ),
    ],
)
def test_bad_filters_are_a_422_that_says_what_to_fix(
    api: httpx.Client, method: str, kwargs: dict[str, Any], needles: list[str]
) -> None:
    if method == "search":
        r = api.get("/v1/search", params={"q": QUESTION, **kwargs})
    elif method == "chat":
        messages = [{"role": "user", "content": QUESTION}]
        r = api.post("/v1/chat", json={"messages": messages, **kwargs})
    else:
        r = api.post("/v1/ask", json={"question": QUESTION, **kwargs})
    assert r.status_code == 422, r.text
    message = r.json()["error"]["message"]
    for needle in needles:
        assert needle.lower() in message.lower(), message


def test_chat_completions_take_filters_in_extra_body(
    api: httpx.Client, ids: dict[str, str]
) -> None:
    base = str(api.base_url).rstrip("/")
    with openai.OpenAI(base_url=f"{base}/v1", api_key="unused", max_retries=0) as client:
        jun = ids["jun.md"]
        done = client.chat.completions.create(
            model=COLLECTION,
            messages=[{"role": "user", "content": QUESTION}],
            extra_body={"filters": {"doc_ids": [jun]}},
        )
        extra = done.model_extra or {}
        assert extra["refused"] is False, extra
        assert {c["doc_id"] for c in extra["citations"]} == {jun}
        with pytest.raises(openai.BadRequestError, match="YYYY-MM-DD"):
            client.chat.completions.create(
                model=COLLECTION,
                messages=[{"role": "user", "content": QUESTION}],
                extra_body={"filters": {"published_after": "01/02/2024"}},
            )
        nothing = client.chat.completions.create(
            model=COLLECTION,
            messages=[{"role": "user", "content": QUESTION}],
            extra_body={"filters": {"published_after": "2030-01-01"}},
        )
        assert (nothing.model_extra or {})["refused"] is True


def test_a_conversation_message_takes_filters(api: httpx.Client, ids: dict[str, str]) -> None:
    created = api.post("/v1/conversations", json={"collection": COLLECTION})
    assert created.status_code == 201, created.text
    cid = created.json()["id"]
    mar = ids["mar.md"]
    r = api.post(
        f"/v1/conversations/{cid}/messages",
        json={"content": QUESTION, "filters": {"doc_ids": [mar]}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["refused"] is False and _cited_docs(body) == {mar}
    bad = api.post(
        f"/v1/conversations/{cid}/messages",
        json={"content": QUESTION, "filters": {"published_after": "March"}},
    )
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.json()["error"]["message"]


def test_a_streamed_answer_with_filters_refuses_when_none_match(api: httpx.Client) -> None:
    body = {"question": QUESTION, "stream": True, "filters": {"publisher": "Nobody"}}
    with api.stream("POST", "/v1/ask", json=body) as r:
        assert r.status_code == 200
        text = "".join(r.iter_text())
    assert '"refused": true' in text.replace('"refused":true', '"refused": true'), text
    assert "filters" in text


def test_the_cli_search_takes_filters(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from dossier.settings import get_settings
    from service.cli import app

    settings = make_settings(tmp_path, embedder="hashing", default_collection=COLLECTION)
    engine = Dossier(settings)
    _write_corpus(tmp_path / "articles")
    Ingestor(settings, engine.store, engine.embedder).ingest(tmp_path / "articles", COLLECTION)
    monkeypatch.setenv("DOSSIER_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("DOSSIER_EMBEDDER", "hashing")
    monkeypatch.setenv("DOSSIER_DEFAULT_COLLECTION", COLLECTION)
    get_settings.cache_clear()
    try:
        run = CliRunner().invoke(app, ["search", QUESTION, "--publisher", "coast times"])
        assert run.exit_code == 0, run.output
        assert "dredging" in run.output or "January" in run.output
        assert "floods" not in run.output and "strike" not in run.output
        bad = CliRunner().invoke(
            app, ["search", QUESTION, "--after", "2024-03-01", "--before", "2024-01-01"]
        )
        assert bad.exit_code != 0 and "is after" in bad.output
    finally:
        get_settings.cache_clear()


def test_a_collection_stored_before_filters_is_rewritten_by_the_next_ingest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dossier.index.filters import DAY_KEY, PUBLISHER_KEY
    from dossier.index.stores import chroma
    from ingest import pipeline

    settings = make_settings(tmp_path, embedder="hashing", default_collection=COLLECTION)
    engine = Dossier(settings)
    _write_corpus(tmp_path / "articles")
    # An older Dossier: no filter keys beside the passages, and its own signature.
    new_meta = chroma._passage_meta
    with monkeypatch.context() as old:
        old.setattr(
            chroma,
            "_passage_meta",
            lambda p: {k: v for k, v in new_meta(p).items() if k not in (DAY_KEY, PUBLISHER_KEY)},
        )
        old.setattr(pipeline, "METADATA_VERSION", "before-filters")
        Ingestor(settings, engine.store, engine.embedder).ingest(tmp_path / "articles", COLLECTION)
    dated = PassageFilter(published_after=date(2024, 1, 1))
    vector = engine.dense.embed_query(QUESTION)
    assert engine.store.query(COLLECTION, vector, 5, dated) == []  # the keys are missing

    report = Ingestor(settings, engine.store, engine.embedder).ingest(
        tmp_path / "articles", COLLECTION
    )
    assert report.updated == len(ARTICLES) and report.chunks_embedded == 0  # vectors reused
    found = engine.store.query(COLLECTION, vector, 5, dated)
    assert found and all(p.published for p, _ in found)
