"""Ingestion over HTTP, once for every store backend (the same contract as the CLI)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from dossier.engine import Dossier
from dossier.testing import LiveServer
from ingest.pipeline import Ingestor
from service.app import create_app
from tests.conftest import make_settings
from tests.test_bad_files import good_article
from tests.test_store_contract import BACKENDS


@pytest.fixture(params=BACKENDS)
def api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = make_settings(
        tmp_path, store=request.param, embedder="hashing", ingest_sync_max_documents=5
    )
    engine = Dossier(settings)
    with (
        LiveServer(create_app(settings, engine)) as live,
        httpx.Client(base_url=live.url, timeout=60) as client,
    ):
        yield {"client": client, "engine": engine, "settings": settings, "tmp": tmp_path}


def _wait(client: httpx.Client, location: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(location).json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.05)
    raise AssertionError("job did not finish")


def test_collections_are_created_and_deleted(api: dict[str, Any]) -> None:
    c: httpx.Client = api["client"]
    made = c.post("/v1/collections", json={"name": "wire"})
    assert made.status_code == 201 and made.json()["documents"] == 0
    assert c.post("/v1/collections", json={"name": "wire"}).status_code == 409
    assert c.post("/v1/collections", json={"name": "Bad Name"}).status_code == 422
    assert [x["name"] for x in c.get("/v1/collections").json()] == ["wire"]
    assert c.delete("/v1/collections/wire").status_code == 204
    assert c.delete("/v1/collections/wire").status_code == 404
    assert c.get("/v1/collections").json() == []


def test_json_upserts_are_idempotent_by_content_hash(api: dict[str, Any]) -> None:
    c: httpx.Client = api["client"]
    docs: list[dict[str, Any]] = [
        {"id": "a", "title": "Harbour", "text": "The harbour reopened on Monday.", "tags": ["x"]},
        {"title": "Railway", "text": "The railway strike ended.", "published": "2024-05-01"},
    ]
    first = c.post("/v1/collections/wire/documents", json={"documents": docs})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["added"], body["chunks_embedded"]) == (2, 2)
    again = c.post("/v1/collections/wire/documents", json={"documents": docs}).json()
    assert (again["added"], again["unchanged"], again["chunks_embedded"]) == (0, 2, 0)

    docs[0]["text"] = "The harbour reopened on Tuesday."
    upd = c.post("/v1/collections/wire/documents", json={"documents": docs[:1]}).json()
    assert (upd["updated"], upd["chunks_embedded"]) == (1, 1)
    doc_id = upd["documents"][0]["doc_id"]
    assert c.get(f"/v1/documents/{doc_id}", params={"collection": "wire"}).json()["text"] == (
        "The harbour reopened on Tuesday."
    )
    hits = c.get("/v1/search", params={"q": "harbour Tuesday", "collection": "wire"}).json()
    assert hits["passages"][0]["doc_id"] == doc_id

    assert c.delete(f"/v1/collections/wire/documents/{doc_id}").status_code == 204
    assert c.delete(f"/v1/collections/wire/documents/{doc_id}").status_code == 404
    assert len(c.get("/v1/documents", params={"collection": "wire"}).json()) == 1

    bad = c.post(
        "/v1/collections/wire/documents",
        json={"documents": [{"title": "Bin", "text": "a\x00b\x01c\x02" * 10}]},
    ).json()
    assert bad["added"] == 0 and "binary" in bad["failed"][0]["reason"]


def test_files_match_the_cli_and_bad_files_are_reported(api: dict[str, Any]) -> None:
    c: httpx.Client = api["client"]
    tmp: Path = api["tmp"]
    folder = tmp / "articles"
    (folder / "sub").mkdir(parents=True)
    for i in range(4):
        (folder / ("sub" if i % 2 else "") / f"g{i}.md").write_text(good_article(i), "utf-8")
    engine: Dossier = api["engine"]
    cli = Ingestor(api["settings"], engine.store, engine.embedder).ingest(folder, "by-cli")

    files = [
        ("files", (p.relative_to(folder).as_posix(), p.read_bytes(), "text/plain"))
        for p in sorted(folder.rglob("*.md"))
    ]
    files.append(("files", ("noise.txt", bytes(range(256)) * 50, "text/plain")))
    files.append(("files", ("page.pdf", b"%PDF-1.4", "application/pdf")))
    files.append(("files", ("sheet.xlsx", b"PK\x03\x04", "application/octet-stream")))
    r = c.post("/v1/collections/by-http/files", files=files)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["added"] == 4 and body["chunks_total"] == cli.chunks_total
    reasons = {f["source"]: f["reason"] for f in body["failed"]}
    assert "binary" in reasons["noise.txt"] and "unsupported file type" in reasons["sheet.xlsx"]
    assert "not a readable PDF" in reasons["page.pdf"]  # a truncated PDF fails alone
    by_cli = {d.source_path: d for d in engine.store.documents("by-cli").values()}
    by_http = {d.source_path: d for d in engine.store.documents("by-http").values()}
    assert by_cli.keys() == by_http.keys()
    for path, doc in by_cli.items():
        assert (doc.content_hash, doc.chunks, doc.tags) == (
            by_http[path].content_hash,
            by_http[path].chunks,
            by_http[path].tags,
        )
    again = c.post("/v1/collections/by-http/files", files=files[:4]).json()
    assert (again["unchanged"], again["chunks_embedded"]) == (4, 0)


def test_large_batches_run_as_jobs_while_queries_go_on(api: dict[str, Any]) -> None:
    c: httpx.Client = api["client"]
    c.post("/v1/collections/wire/documents", json={"documents": [{"title": "T", "text": "Seed."}]})
    docs = [{"id": f"d{i}", "title": f"T{i}", "text": good_article(i)} for i in range(40)]
    searches: list[int] = []
    stop = threading.Event()

    def query() -> None:
        with httpx.Client(base_url=str(c.base_url), timeout=30) as q:
            while not stop.is_set():
                searches.append(
                    q.get("/v1/search", params={"q": "harbour", "collection": "wire"}).status_code
                )

    t = threading.Thread(target=query)
    t.start()
    while not searches:
        time.sleep(0.01)
    try:
        r = c.post("/v1/collections/wire/documents", json={"documents": docs})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["total"] == 40 and job["status"] in ("queued", "running", "done")
        done = _wait(c, r.headers["location"])
    finally:
        stop.set()
        t.join()
    assert done["status"] == "done" and done["processed"] == 40 and done["eta_s"] == 0
    assert done["result"]["added"] == 40
    assert searches and set(searches) == {200}
    assert c.get("/v1/jobs/" + "0" * 32).status_code == 404
