"""The Corpus page's writes through Streamlit's AppTest, against an API of their own."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.ui.conftest import AppFactory
from tests.ui.test_client_ingest import BINARY, HARBOUR, RAILWAY
from ui.client import DossierClient, IngestProblem, IngestResult, Job
from ui.views import eta_text, ingest_summary


def corpus_page(app: AppFactory, api: str) -> AppTest:
    at = app(api).run()
    at.radio(key="page").set_value("Corpus").run()
    assert not at.exception
    return at


def test_a_document_is_deleted_after_a_confirmation(app: AppFactory, write_api: str) -> None:
    with DossierClient(write_api) as c:
        done = c.upload_files("wire", [("harbour.md", HARBOUR)])
        assert isinstance(c.upload_files("wire", [("railway.md", RAILWAY)]), IngestResult)
    assert isinstance(done, IngestResult) and done.added == 1
    harbour = done.documents[0].doc_id
    at = corpus_page(app, write_api)
    assert len(at.dataframe[1].value) == 2
    at.button(key=f"delete-{harbour}").click().run()
    # The first click only asks; nothing is deleted yet.
    assert len(at.dataframe[1].value) == 2
    at.button(key=f"cancel-{harbour}").click().run()
    assert not [b for b in at.button if b.key == f"confirm-{harbour}"]
    at.button(key=f"delete-{harbour}").click().run()
    at.button(key=f"confirm-{harbour}").click().run()
    assert not at.exception and not at.error
    assert list(at.dataframe[1].value["title"]) == ["Railway strike ends"]
    assert any("Deleted “Harbour reopens” from wire." in s.value for s in at.success)
    with DossierClient(write_api) as c:
        assert [d.title for d in c.documents("wire")] == ["Railway strike ends"]


def test_urls_on_a_server_without_the_route_show_a_message(app: AppFactory, write_api: str) -> None:
    with DossierClient(write_api) as c:
        c.create_collection("wire")
    at = corpus_page(app, write_api)
    at.text_area(key="add-urls").input("http://127.0.0.1:9/article\n\n")
    at.button(key="add-submit").click().run()
    assert not at.exception
    messages = [e.value for e in at.error] + [w.value for w in at.warning]
    assert messages, "the outcome of the URL submission is shown"
    if any("does not fetch URLs" in m for m in messages):
        return
    # A server with the route: the unreachable URL is reported with its reason instead.
    assert any("127.0.0.1:9" in m.value for m in at.markdown), messages


def test_uploaded_files_show_counts_and_each_bad_file(app: AppFactory, write_api: str) -> None:
    at = corpus_page(app, write_api)  # no collection yet: the form is there all the same
    at.text_input(key="add-collection").input("wire")
    at.file_uploader(key="uploads").set_value(
        [("harbour.md", HARBOUR, "text/markdown"), ("blob.txt", BINARY, "text/plain")]
    )
    at.button(key="add-submit").click().run()
    assert not at.exception
    (summary,) = at.warning
    assert summary.value.startswith("wire: 1 added, 0 updated, 0 unchanged, 0 duplicates, 1 failed")
    (problem,) = [m.value for m in at.markdown if "dossier-problem" in m.value]
    assert "Failed: <code>blob.txt</code>: binary content" in problem
    # The page now shows the collection written to, with its one document.
    assert at.session_state["collection"] == "wire"
    assert list(at.dataframe[1].value["title"]) == ["Harbour reopens"]


def test_an_api_error_is_its_message(app: AppFactory, write_api: str) -> None:
    at = corpus_page(app, write_api)
    at.text_input(key="add-collection").input("Bad Name")
    at.file_uploader(key="uploads").set_value([("harbour.md", HARBOUR, "text/markdown")])
    at.button(key="add-submit").click().run()
    assert not at.exception
    (error,) = at.error
    assert "name" in error.value and "(HTTP 422)" in error.value
    assert "Traceback" not in error.value


def test_progress_text_says_how_far_and_how_long() -> None:
    job = Job(id="j" * 32, collection="wire", status="running", total=40, processed=10, eta_s=12.4)
    assert eta_text(job) == ", about 12 s left"
    assert eta_text(job.model_copy(update={"eta_s": 0.3})) == ", almost done"
    assert eta_text(job.model_copy(update={"status": "queued", "eta_s": None})) == ""


def test_summary_counts_every_kind_of_outcome() -> None:
    result = IngestResult(
        collection="wire",
        added=2,
        updated=1,
        unchanged=3,
        duplicates=[IngestProblem(source="b.md", reason="same text as a.md")],
        failed=[IngestProblem(source="x.txt", reason="binary")],
        chunks_embedded=4,
        chunks_total=9,
        seconds=1.25,
    )
    assert ingest_summary(result) == (
        "wire: 2 added, 1 updated, 3 unchanged, 1 duplicates, 1 failed, 0 skipped "
        "(4 of 9 passages embedded, 1.2 s)"
    )
