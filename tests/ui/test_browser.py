"""The UI in a real browser: headless Chromium via Playwright, the UI in a `streamlit run`
subprocess, the API in a thread. Artifacts (screenshots, latency JSON) go to tests/artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from dossier.engine import Dossier
from dossier.testing import free_port, wait_for_http
from tests.fake_llm import Step
from tests.ui.conftest import APP_FILE, FOLLOW_UP, ROOT, carries_topic, llm_api
from ui.client import DossierClient

pytestmark = pytest.mark.slow

ARTIFACTS = ROOT / "tests" / "artifacts"
QUESTION = "Why did Albania expel Iranian diplomats?"
TIMED_QUESTIONS = [
    QUESTION,
    "Who did Albania blame for the cyberattack?",
    "How long did Iranian diplomats have to leave Tirana?",
    "What did Edi Rama say about the attack?",
    "When was Albania's digital infrastructure attacked?",
]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def _chromium() -> str:
    """Debian's Chromium (`make browser` installs it); skip only outside CI when it is absent."""
    path = os.environ.get("DOSSIER_CHROMIUM") or shutil.which("chromium")
    if path:
        return path
    message = "no chromium on PATH; run `make browser` (needs apt-get) or set DOSSIER_CHROMIUM"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def streamlit_ui(api_url: str, tmp: Path) -> Iterator[str]:
    """``streamlit run ui/app.py`` on a free loopback port, talking to ``api_url``."""
    port = free_port()
    log_path = tmp / "streamlit.log"
    env = {**os.environ, "DOSSIER_API_URL": api_url, "PYTHONPATH": str(ROOT)}
    cmd = [
        *(sys.executable, "-m", "streamlit", "run", str(APP_FILE)),
        *("--server.address", "127.0.0.1", "--server.port", str(port)),
        *("--server.headless", "true", "--browser.gatherUsageStats", "false"),
        *("--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"),
    ]
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            if not wait_for_http(f"{url}/_stcore/health", proc):
                pytest.fail(f"streamlit did not start:\n{log_path.read_text()[-2000:]}")
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=15)


@pytest.fixture(scope="module")
def ui_url(live_api: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with streamlit_ui(live_api, tmp_path_factory.mktemp("streamlit")) as url:
        yield url


@contextmanager
def chat_page(url: str) -> Iterator[Any]:
    """A headless Chromium tab on the chat page, its input ready."""
    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(url)
            page.get_by_test_id("stChatInputTextArea").wait_for(timeout=30_000)
            yield page
        finally:
            browser.close()


def _mark_text(mark: Any) -> str:
    # The mark ends with a <sup>[n]</sup> label; compare only the cited words.
    text: str = mark.evaluate(
        "m => { const c = m.cloneNode(true); c.querySelectorAll('sup').forEach(s => s.remove());"
        " return c.innerText; }"
    )
    return text


def test_seed_question_then_citation_click_highlights_the_cited_sentence(
    ui_url: str, live_api: str
) -> None:
    executable = _chromium()
    from playwright.sync_api import expect, sync_playwright

    with DossierClient(live_api) as client:
        expected = {c.number: c for c in client.ask(QUESTION).citations}
    assert expected, "the seed question must be answered with citations"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.goto(ui_url)
            box = page.get_by_test_id("stChatInputTextArea")
            box.wait_for(timeout=30_000)

            # Submit-to-rendered latency over a few questions; reported, not asserted.
            latencies_ms = []
            answers = page.locator(".dossier-answer")
            for i, question in enumerate(TIMED_QUESTIONS, 1):
                box.fill(question)
                t0 = time.perf_counter()
                box.press("Enter")
                # The first answer loads the answer models in the API process; on a
                # busy 2-core machine that has taken over 30 s.
                expect(answers).to_have_count(i, timeout=90_000 if i == 1 else 30_000)
                latencies_ms.append((time.perf_counter() - t0) * 1000)
            report = {
                "questions": TIMED_QUESTIONS,
                "latencies_ms": [round(x, 1) for x in latencies_ms],
                "p50_ms": round(statistics.median(latencies_ms), 1),
                "p95_ms": round(
                    statistics.quantiles(latencies_ms, n=20, method="inclusive")[18], 1
                ),
                "note": "Enter pressed to answer rendered; the first includes warm-up.",
            }
            (ARTIFACTS / "ui_latency.json").write_text(json.dumps(report, indent=2))
            print(f"\nsubmit-to-answer: p50 {report['p50_ms']} ms, p95 {report['p95_ms']} ms")

            # The seed answer is the first: its chips link to the source view in a new tab.
            first = answers.first
            chips = first.locator("a.cite-chip")
            assert chips.count() == len(expected)
            first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "ui_chat.png"))
            # The citation furthest down the article is the one that needs scrolling to.
            last = max(expected.values(), key=lambda c: c.start).number
            with context.expect_page() as opened:
                first.locator(f'a.cite-chip[data-cite="{last}"]').click()
            source = opened.value
            mark = source.locator("mark#cited")
            mark.wait_for(timeout=30_000)
            assert _mark_text(mark) == expected[last].quote
            # The page's script marks the article once the cited span is scrolled into view.
            expect(source.locator(".dossier-article[data-scrolled]")).to_have_count(1)
            expect(mark).to_be_in_viewport()
            expect(source.get_by_role("heading", name=expected[last].title)).to_be_visible()
            source.screenshot(path=str(ARTIFACTS / "ui_source.png"))

            # The in-session button opens the same span without leaving the chat tab.
            page.get_by_role("button", name="Open [1] in the article").first.click()
            mark = page.locator("mark#cited")
            mark.wait_for(timeout=30_000)
            assert _mark_text(mark) == expected[1].quote
        finally:
            browser.close()
    assert (ARTIFACTS / "ui_source.png").stat().st_size > 10_000


def test_two_turn_conversation_then_a_new_one(ui_url: str) -> None:
    from playwright.sync_api import expect

    with chat_page(ui_url) as page:
        box = page.get_by_test_id("stChatInputTextArea")
        answers = page.locator(".dossier-answer")
        searched = page.get_by_text("Searched: ")
        box.fill(QUESTION)
        box.press("Enter")
        expect(answers).to_have_count(1, timeout=30_000)
        expect(searched).to_have_count(0)
        box.fill(FOLLOW_UP)
        box.press("Enter")
        expect(answers).to_have_count(2, timeout=30_000)
        expect(searched).to_have_count(1)
        shown = searched.inner_text().removeprefix("Searched: ")
        assert carries_topic(shown), shown
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui_conversation.png"), full_page=True)
        page.get_by_role("button", name="New conversation").click()
        expect(answers).to_have_count(0, timeout=30_000)
        box.fill(FOLLOW_UP)
        box.press("Enter")
        expect(answers).to_have_count(1, timeout=30_000)
        expect(searched).to_have_count(0)  # alone, the follow-up is searched as typed


STREAMED = "Albania cut diplomatic ties with Iran over a cyberattack [1]."


def test_the_answer_text_streams_in_before_the_verified_answer(
    seed_engine: Dossier, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A model that writes slowly (the scripted server, about 0.1 s a token): its words
    show in the chat while it writes, then the verified answer with chips replaces them."""
    from playwright.sync_api import expect

    tmp = tmp_path_factory.mktemp("streaming")
    slow = Step(text=STREAMED, token_delay_s=0.1)
    with (
        llm_api(seed_engine, tmp, slow) as api,
        streamlit_ui(api, tmp) as url,
        chat_page(url) as page,
    ):
        box = page.get_by_test_id("stChatInputTextArea")
        box.fill(QUESTION)
        box.press("Enter")
        assistant = page.get_by_test_id("stChatMessage").nth(1)
        # Part of the text is on screen while the final answer is not there yet.
        expect(assistant).to_contain_text("Albania cut", timeout=30_000)
        assert page.locator(".dossier-answer").count() == 0
        answer = page.locator(".dossier-answer")
        expect(answer).to_have_count(1, timeout=30_000)
        expect(answer).to_contain_text("Albania cut diplomatic ties with Iran")
        # The streamed "[1]" marker is now a chip that links to the cited span.
        expect(answer.locator("a.cite-chip")).to_have_count(1)
        assert "view=source" in (answer.locator("a.cite-chip").get_attribute("href") or "")


def test_upload_shows_the_summary_and_the_bad_file_then_a_document_is_deleted(
    write_api: str, tmp_path: Path
) -> None:
    """A curator in the browser: three files (more than one request ingests at once, so a
    job with a progress bar), one of them binary; then one document deleted, confirmed."""
    from playwright.sync_api import FilePayload, expect

    from tests.ui.test_client_ingest import BINARY, HARBOUR, RAILWAY

    executable = _chromium()
    from playwright.sync_api import sync_playwright

    with streamlit_ui(write_api, tmp_path) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url)
            page.get_by_text("Corpus", exact=True).click()
            expect(page.get_by_role("heading", name="Add documents")).to_be_visible(timeout=30_000)
            page.get_by_role("textbox", name="Collection (new or existing)").fill("wire")
            files: list[FilePayload] = [
                {"name": "harbour.md", "mimeType": "text/markdown", "buffer": HARBOUR},
                {"name": "railway.md", "mimeType": "text/markdown", "buffer": RAILWAY},
                {"name": "blob.txt", "mimeType": "text/plain", "buffer": BINARY},
            ]
            page.locator("input[type=file]").set_input_files(files)
            expect(page.get_by_text("blob.txt")).to_be_visible(timeout=30_000)
            page.get_by_role("button", name="Add to collection").click()
            summary = page.get_by_text("wire: 2 added, 0 updated, 0 unchanged, 0 duplicates")
            expect(summary).to_be_visible(timeout=60_000)
            problem = page.locator('.dossier-problem[data-kind="failed"]')
            expect(problem).to_have_count(1)
            expect(problem).to_contain_text("blob.txt")
            reason = problem.inner_text().split("blob.txt", 1)[1].strip(" :")
            assert reason, "the failed file's reason is shown"
            expect(page.get_by_text("Ingested by background job")).to_be_visible()
            expect(page.get_by_text("2 of 2 documents")).to_be_visible()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "ui_upload.png"), full_page=True)

            page.get_by_text("Delete documents (2)").click()
            page.get_by_role("button", name="Delete", exact=True).first.click()
            page.get_by_role("button", name="Confirm delete").click()
            expect(page.get_by_text("1 of 1 documents")).to_be_visible(timeout=30_000)
            expect(page.get_by_text("from wire.")).to_be_visible()
        finally:
            browser.close()
    with DossierClient(write_api) as client:
        assert len(client.documents("wire")) == 1


# A second report of the expulsion that gives another deadline than the seed article's
# "within 24 hours" (written for this test; it is not part of the corpus).
OTHER_REPORT = """---
title: Albania orders Iranian embassy staff out
publisher: Balkan Wire (test fixture)
published: 2022-09-08
---
Albania orders Iranian embassy staff out

Prime Minister Edi Rama's government ordered all Iranian diplomats and staff to leave Tirana \
within 48 hours, citing the July 15 attack on the country's digital infrastructure.

Tehran denied any involvement and called the decision ill-considered.
"""
THREE_TURNS = [
    QUESTION,
    "How long did the Iranian diplomats have to leave Tirana?",
    "Who did Albania blame for the cyberattack?",
]


@pytest.fixture(scope="module")
def disagreeing_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The UI over the seed article and a second report that disagrees with it."""
    from dossier.testing import LiveServer
    from ingest.pipeline import Ingestor
    from service.app import create_app
    from tests.conftest import CORPUS, SEED_COLLECTION, make_settings

    tmp = tmp_path_factory.mktemp("disagree")
    folder = tmp / "corpus"
    folder.mkdir()
    for article in (CORPUS / SEED_COLLECTION).glob("*.md"):
        shutil.copy(article, folder / article.name)
    (folder / "2022-09-08-balkan-wire.md").write_text(OTHER_REPORT, encoding="utf-8")
    settings = make_settings(tmp / "index", default_collection="disagree")
    engine = Dossier(settings)
    Ingestor(settings, engine.store, engine.embedder).ingest(folder, "disagree")
    with (
        LiveServer(create_app(settings, dossier=engine)) as api,
        streamlit_ui(api.url, tmp) as url,
    ):
        yield url


def test_a_conversation_whose_second_answer_shows_that_sources_disagree(
    disagreeing_ui: str,
) -> None:
    from playwright.sync_api import expect

    with chat_page(disagreeing_ui) as page:
        box = page.get_by_test_id("stChatInputTextArea")
        answers = page.locator(".dossier-answer")
        for turn, question in enumerate(THREE_TURNS, start=1):
            box.fill(question)
            box.press("Enter")
            expect(answers).to_have_count(turn, timeout=90_000)
            if turn == 2:
                mark = page.locator(".dossier-conflict").last
                expect(mark).to_be_visible(timeout=30_000)
                sides = mark.locator(".side")
                expect(sides).to_have_count(2)
                shown = {sides.nth(i).locator(".value").inner_text() for i in range(2)}
                assert shown == {"24 hours", "48 hours"}, shown
                # Each side opens its own article at the quoted sentence.
                links = mark.locator("a.cite-chip")
                expect(links).to_have_count(2)
                hrefs = [links.nth(i).get_attribute("href") or "" for i in range(2)]
                assert all("doc=" in h and "start=" in h for h in hrefs), hrefs
                assert len(set(hrefs)) == 2
        # Streamlit scrolls inside its own container: a tall window shows all three turns.
        page.set_viewport_size({"width": 1280, "height": 3000})
        page.locator(".dossier-conflict").last.scroll_into_view_if_needed()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "ui_conflict.png"), full_page=True)
    assert (ARTIFACTS / "ui_conflict.png").stat().st_size > 10_000
