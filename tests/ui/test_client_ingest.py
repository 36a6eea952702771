"""The UI client's writes (uploads, jobs, deletes, URLs) against a real API on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ui.client import (
    ApiResponseError,
    DossierClient,
    IngestResult,
    Job,
    UrlsUnsupported,
)

# Bytes no text reader accepts: the server's binary check must reject the file, not index it.
BINARY = bytes(range(256)) * 8


def article(title: str, body: str) -> bytes:
    front = f"---\ntitle: {title}\npublisher: Test Wire\npublished: 2024-05-01\n---\n\n"
    return (front + body + "\n").encode()


HARBOUR = article("Harbour reopens", "The harbour reopened on Monday after the storm.")
RAILWAY = article("Railway strike ends", "The railway strike ended on Friday.")
BRIDGE = article("Bridge closed", "The old bridge closed for repairs on Tuesday.")


@pytest.fixture
def client(write_api: str) -> Iterator[DossierClient]:
    with DossierClient(write_api, timeout_s=60) as c:
        yield c


def test_a_small_upload_answers_at_once_with_each_bad_file_and_its_reason(
    client: DossierClient,
) -> None:
    assert client.may_write  # loopback, no key
    result = client.upload_files("wire", [("harbour.md", HARBOUR), ("blob.txt", BINARY)])
    assert isinstance(result, IngestResult)
    assert (result.collection, result.added) == ("wire", 1)
    assert [f.source for f in result.failed] == ["blob.txt"]
    assert result.failed[0].reason
    (doc,) = client.documents("wire")
    assert (doc.title, doc.publisher, doc.published) == (
        "Harbour reopens",
        "Test Wire",
        "2024-05-01",
    )
    again = client.upload_files("wire", [("harbour.md", HARBOUR)])
    assert isinstance(again, IngestResult) and again.unchanged == 1 and again.added == 0


def test_a_large_upload_is_a_job_polled_to_its_result(client: DossierClient) -> None:
    files = [("a.md", HARBOUR), ("b.md", RAILWAY), ("c.md", BRIDGE), ("d.txt", BINARY)]
    submitted = client.upload_files("wire", files)
    assert isinstance(submitted, Job) and submitted.total == 3
    seen: list[Job] = []
    job = client.wait_job(submitted, seen.append, interval_s=0.05, timeout_s=60)
    assert job.status == "done" and job.processed == job.total == 3
    assert seen[0] is submitted and seen[-1] == job
    assert job.result is not None
    assert job.result.added == 3
    assert [f.source for f in job.result.failed] == ["d.txt"]
    assert client.job(job.id).status == "done"


def test_created_collection_and_deleted_document(client: DossierClient) -> None:
    made = client.create_collection("empty-one")
    assert (made.name, made.documents) == ("empty-one", 0)
    with pytest.raises(ApiResponseError) as exists:
        client.create_collection("empty-one")
    assert exists.value.status == 409 and "empty-one" in str(exists.value)

    result = client.upload_files("wire", [("harbour.md", HARBOUR)])
    assert isinstance(client.upload_files("wire", [("railway.md", RAILWAY)]), IngestResult)
    assert isinstance(result, IngestResult) and result.added == 1
    gone = result.documents[0].doc_id
    client.delete_document("wire", gone)
    assert gone not in {d.doc_id for d in client.documents("wire")}
    with pytest.raises(ApiResponseError) as again:
        client.delete_document("wire", gone)
    assert again.value.status == 404 and again.value.kind == "document_not_found"


def test_errors_are_the_api_messages(client: DossierClient) -> None:
    with pytest.raises(ApiResponseError) as bad_name:
        client.upload_files("Bad Name", [("a.md", HARBOUR)])
    assert bad_name.value.status == 422 and "name" in str(bad_name.value)
    with pytest.raises(ApiResponseError) as no_job:
        client.job("0" * 32)
    assert no_job.value.status == 404 and "No ingestion job" in str(no_job.value)


def test_urls_on_a_server_without_the_route_say_so(client: DossierClient) -> None:
    try:
        outcome = client.add_urls("wire", ["http://127.0.0.1:9/none"])
    except UrlsUnsupported as exc:
        assert str(exc) == "This server does not fetch URLs."
        assert exc.status in (404, 405)
    except ApiResponseError as exc:
        # A server that has the route: an unreachable URL is its message, never a crash.
        assert exc.status < 500, exc
    else:  # the route exists: the URL that cannot be fetched is reported
        assert isinstance(outcome, (IngestResult, Job))


def test_a_remote_api_without_a_key_is_read_only() -> None:
    with DossierClient("http://dossier.example.org:8900") as remote:
        assert not remote.may_write
    with DossierClient("http://dossier.example.org:8900", api_key="dsk_x") as keyed:
        assert keyed.may_write
