"""The UI's pages. Each takes a ``DossierClient`` and turns every ``ApiError`` into a message
that says what to do, so no page ever shows a traceback."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, MutableMapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

import streamlit as st

from ui import render
from ui.client import (
    MAX_CHAT_MESSAGES,
    UPLOAD_TYPES,
    Answer,
    ApiError,
    ApiResponseError,
    ApiTimeout,
    ChatMessage,
    Document,
    DossierClient,
    Filters,
    IngestResult,
    Job,
    StreamEvent,
    TextDelta,
    UrlsUnsupported,
)
from ui.evals import SuiteReport, latest_reports

log = logging.getLogger(__name__)

EXAMPLE_QUESTION = "Why did Albania expel Iranian diplomats?"
RELATED_SHOWN = 3

Message = MutableMapping[str, Any]


# -- navigation between the chat and the source view ---------------------------------------
def open_source(query: dict[str, str]) -> None:
    """Button callback: show one citation's article in this session (the chat is kept)."""
    st.session_state["source"] = dict(query)


def leave_source() -> None:
    st.session_state.pop("source", None)
    # A source opened from a chip link arrives via the URL; drop it so it does not reopen.
    st.query_params.clear()


def source_from_query() -> dict[str, str] | None:
    qp = st.query_params
    if qp.get("view") != "source" or not qp.get("doc"):
        return None
    keys = ("collection", "doc", "start", "end", "n")
    return {k: str(qp.get(k, "")) for k in keys}


# -- chat --------------------------------------------------------------------------------
def _show_error(message: Message) -> None:
    if message.get("kind") == "timeout":
        st.warning(message["error"], icon="⏱️")
    else:
        st.error(message["error"], icon="🚫")


def _feedback(client: DossierClient, i: int, message: Message, answer: Answer) -> None:
    if message.get("feedback_id"):
        st.caption(f"Feedback #{message['feedback_id']} recorded. Thank you.")
        return
    rating = st.feedback("thumbs", key=f"fb-{i}")
    if rating is None:
        return
    comment = st.text_input("Comment (optional)", key=f"fb-comment-{i}")
    if st.button("Send feedback", key=f"fb-send-{i}"):
        try:
            saved = client.send_feedback(answer, "up" if rating == 1 else "down", comment)
        except ApiError as exc:
            st.error(f"Feedback not saved: {exc}")
            return
        message["feedback_id"] = saved.id
        st.success(f"Feedback #{saved.id} recorded. Thank you.")


def render_answer(client: DossierClient, i: int, message: Message) -> None:
    """One assistant turn: the answer (per sentence), its cards, timing and feedback."""
    if message.get("error"):
        _show_error(message)
        return
    answer: Answer = message["answer"]
    if answer.degraded:
        # The reader must know the configured model did not write this answer.
        reason = answer.degraded_reason or "no reason given"
        st.warning(
            f"The configured model failed ({reason}); this is the extractive fallback answer.",
            icon="⚠️",
        )
    st.markdown(render.answer_html(answer), unsafe_allow_html=True)
    for conflict in [] if answer.refused else answer.conflicts:
        st.markdown(render.conflict_html(answer, conflict), unsafe_allow_html=True)
    searched = answer.standalone_question
    if searched and searched.strip() != str(message.get("question", "")).strip():
        st.caption(f"Searched: {render.esc(searched)}")
    if answer.refused:
        related = answer.passages[:RELATED_SHOWN]
        if related:
            st.caption("Related, but not an answer:")
            for p in related:
                st.markdown(render.related_card_html(p), unsafe_allow_html=True)
    else:
        for card, cits in render.cited_cards(answer):
            st.markdown(card, unsafe_allow_html=True)
            row = st.container(horizontal=True)
            for c in cits:
                row.button(
                    f"Open [{c.number}] in the article",
                    key=f"open-{i}-{c.number}",
                    on_click=open_source,
                    args=(render.source_query(c, answer.collection),),
                    type="tertiary",
                )
    # The model's calibrated P(answerable): how sure Dossier is that the corpus says this.
    confidence = (
        f" · answerable with probability {answer.answerable_probability:.0%}"
        if answer.answerable_probability is not None
        else ""
    )
    st.caption(
        f"{answer.answerer} answerer · {answer.collection} · "
        f"{message.get('elapsed_ms', 0):.0f} ms round trip{confidence}"
    )
    _feedback(client, i, message, answer)


def conversation(messages: Sequence[Message]) -> list[ChatMessage]:
    """The history as the API reads it: each question, and each answer's text. Failed turns
    keep the question (the user asked it) but have no answer to send. Only the latest
    messages that one request may carry are sent, starting at a question."""
    out = []
    for m in messages:
        if m["role"] == "user":
            out.append(ChatMessage(role="user", content=m["text"]))
        elif m.get("answer") is not None:
            out.append(ChatMessage(role="assistant", content=m["answer"].answer))
    out = out[-MAX_CHAT_MESSAGES:]
    while out and out[0].role != "user":
        out = out[1:]
    return out


def _texts(events: Iterator[StreamEvent], final: list[Answer]) -> Iterator[str]:
    """The streamed text for ``st.write_stream``; the final answer goes into ``final``."""
    for event in events:
        if isinstance(event, TextDelta):
            yield render.md_text(event.text)
        elif isinstance(event, Answer):
            final.append(event)


def _ask(
    client: DossierClient, history: list[ChatMessage], question: str, collection: str | None
) -> Message:
    """Stream the answer to the last message of ``history`` while it is written, then
    replace the streamed text with the verified answer (drawn by ``render_answer``)."""
    t0 = time.perf_counter()
    message: Message = {"role": "assistant", "question": question}
    streamed = st.empty()
    final: list[Answer] = []
    try:
        with streamed.container(), st.spinner("Reading the collection…"):
            events = client.chat_stream(history, collection, filters=date_filter())
            st.write_stream(_texts(events, final))
        if not final:
            raise ApiError("The answer stream ended without an answer. Try again.")
        message["answer"] = final[0]
    except ApiTimeout as exc:
        message.update(error=str(exc), kind="timeout")
    except ApiResponseError as exc:
        message.update(error=f"{exc} (HTTP {exc.status})", kind=exc.kind)
    except ApiError as exc:
        message.update(error=str(exc), kind="unreachable")
    finally:
        streamed.empty()
    message["elapsed_ms"] = (time.perf_counter() - t0) * 1000
    return message


def _ask_example() -> None:
    # A callback runs before the script, so the question is there when the input is read.
    st.session_state["pending"] = EXAMPLE_QUESTION


def new_conversation() -> None:
    st.session_state["messages"] = []
    st.session_state.pop("pending", None)


def date_filter() -> Filters | None:
    """The sidebar's date range, when it is on: answers then use only sources dated in it."""
    if not st.session_state.get("date-filter-on"):
        return None
    after = st.session_state.get("date-after")
    before = st.session_state.get("date-before")
    return Filters(
        published_after=after if isinstance(after, date) else None,
        published_before=before if isinstance(before, date) else None,
    )


def _date_filter_widgets() -> None:
    with st.sidebar.expander("Sources by date"):
        on = st.checkbox("Only sources published between", key="date-filter-on")
        # Streamlit's default range is ten years around the value: news archives are older.
        lo, hi = date(1900, 1, 1), date(2100, 12, 31)
        st.date_input(
            "From", date(2000, 1, 1), min_value=lo, max_value=hi, key="date-after", disabled=not on
        )
        st.date_input(
            "To", date.today(), min_value=lo, max_value=hi, key="date-before", disabled=not on
        )
        if on:
            st.caption("Undated sources are left out while this is on.")


def chat(client: DossierClient, collection: str | None) -> None:
    st.title("Ask Dossier")
    _date_filter_widgets()
    messages: list[Message] = st.session_state.setdefault("messages", [])
    # Read the input first (it is pinned to the bottom wherever it is called), so the
    # empty-state hint is not drawn above the first question.
    question = st.chat_input("Ask a question about the collection") or st.session_state.pop(
        "pending", None
    )
    if messages or question:
        st.sidebar.button(
            "New conversation",
            key="new-conversation",
            on_click=new_conversation,
            help="Forget the earlier turns: the next question is read on its own.",
        )
    if not messages and not question:
        st.caption(
            "Answers quote the collection and cite each sentence; when it has no answer, "
            "Dossier says so. Follow-up questions read the earlier turns."
        )
        st.button(f"Try: {EXAMPLE_QUESTION}", key="example", on_click=_ask_example)
    for i, m in enumerate(messages):
        with st.chat_message(m["role"]):
            if m["role"] == "user":
                st.markdown(render.esc(m["text"]))
            else:
                render_answer(client, i, m)
    if not question:
        return
    messages.append({"role": "user", "text": question})
    with st.chat_message("user"):
        st.markdown(render.esc(question))
    with st.chat_message("assistant"):
        reply = _ask(client, conversation(messages), question, collection)
        messages.append(reply)
        render_answer(client, len(messages) - 1, reply)


# -- source view -------------------------------------------------------------------------
def source(client: DossierClient, src: dict[str, str]) -> None:
    st.button("← Back", on_click=leave_source, key="back")
    try:
        start, end = int(src["start"]), int(src["end"])
    except (KeyError, ValueError):
        st.error("This citation link is incomplete (start/end missing); open it from an answer.")
        return
    try:
        doc = client.document(src["doc"], src.get("collection") or None)
    except ApiError as exc:
        st.error(str(exc), icon="🚫")
        return
    st.title(doc.title)
    meta = render.source_meta(doc.publisher, doc.published, doc.url)
    tags = f" · tags: {render.esc(', '.join(doc.tags))}" if doc.tags else ""
    st.markdown(
        f'<div class="dossier-card meta">{meta}{tags} · collection '
        f"{render.esc(doc.collection)} · document {render.esc(doc.doc_id)}</div>",
        unsafe_allow_html=True,
    )
    label = f"[{src['n']}]" if src.get("n") else ""
    if not 0 <= start < end <= len(doc.text):
        st.warning(
            "The cited span lies outside this article; the collection was probably re-ingested "
            "since the answer was given. Ask again for fresh citations."
        )
        start = end = 0
    else:
        st.caption(f"Highlighted: the sentence cited as {label or 'the citation'}.")
    st.html(
        render.article_html(doc, start, end, label) + render.SCROLL_SCRIPT,
        unsafe_allow_javascript=True,
    )


# -- corpus ------------------------------------------------------------------------------
# Delete buttons for more documents than this would make the page long and slow; the
# filter narrows the list.
DELETABLE_SHOWN = 50
# Where the outcome of the last ingestion is kept, so it survives the rerun that refreshes
# the document list and the collection picker.
INGEST_OUTCOME = "ingest-outcome"


def _api_error(exc: ApiError) -> str:
    return f"{exc} (HTTP {exc.status})" if isinstance(exc, ApiResponseError) else str(exc)


def eta_text(job: Job) -> str:
    if job.eta_s is None or job.status != "running":
        return ""
    return f", about {job.eta_s:.0f} s left" if job.eta_s >= 1 else ", almost done"


def _show_job(bar: Any, job: Job) -> None:
    fraction = job.processed / job.total if job.total else 1.0
    bar.progress(
        min(1.0, fraction),
        text=f"Ingesting: {job.processed} of {job.total} documents ({job.status}{eta_text(job)})",
    )


def ingest_summary(result: IngestResult) -> str:
    """One line of counts; the problems are listed one per file under it."""
    return (
        f"{result.collection}: {result.added} added, {result.updated} updated, "
        f"{result.unchanged} unchanged, {len(result.duplicates)} duplicates, "
        f"{len(result.failed)} failed, {len(result.skipped)} skipped "
        f"({result.chunks_embedded} of {result.chunks_total} passages embedded, "
        f"{result.seconds:.1f} s)"
    )


def show_outcome(outcome: dict[str, Any]) -> None:
    if outcome.get("error"):
        st.error(outcome["error"], icon="🚫")
    result: IngestResult | None = outcome.get("result")
    if result is None:
        return
    bad = result.failed or result.skipped
    (st.warning if bad else st.success)(ingest_summary(result))
    for label, items in (
        ("Failed", result.failed),
        ("Skipped", result.skipped),
        ("Duplicate", result.duplicates),
    ):
        for item in items:
            # The server's reasons often start with the file name; it is shown once.
            reason = item.reason.removeprefix(f"{item.source}: ")
            st.markdown(
                f'<div class="dossier-problem" data-kind="{label.lower()}">{label}: '
                f"<code>{render.esc(item.source)}</code>: {render.esc(reason)}</div>",
                unsafe_allow_html=True,
            )
    if outcome.get("job"):
        st.caption(f"Ingested by background job {outcome['job']}.")


def _finish(client: DossierClient, submitted: IngestResult | Job) -> dict[str, Any]:
    """The result of an upload, waiting (with a progress bar) when it became a job."""
    if isinstance(submitted, IngestResult):
        return {"result": submitted}
    bar = st.progress(0.0, text="Queued…")
    job = client.wait_job(submitted, lambda j: _show_job(bar, j))
    if job.status == "failed":
        return {
            "error": f"The ingestion job failed: {job.error or 'no reason given'}",
            "job": job.id,
        }
    return {"result": job.result, "job": job.id}


def add_documents(client: DossierClient, collection: str | None) -> None:
    """Upload files or URLs into a new or existing collection, and show what happened."""
    st.subheader("Add documents")
    outcome = st.session_state.pop(INGEST_OUTCOME, None)
    if outcome:
        show_outcome(outcome)
    with st.form("add-documents", clear_on_submit=True):
        target = st.text_input(
            "Collection (new or existing)",
            value=collection or "",
            placeholder="e.g. wire",
            help="3-56 lowercase letters, digits, '.', '_' or '-'. A new name creates it.",
            key="add-collection",
        )
        uploads = st.file_uploader(
            "Files", type=list(UPLOAD_TYPES), accept_multiple_files=True, key="uploads"
        )
        urls_text = st.text_area(
            "URLs, one a line", placeholder="https://example.org/article", key="add-urls"
        )
        submitted = st.form_submit_button("Add to collection", key="add-submit")
    if not submitted:
        return
    name = target.strip()
    urls = [u.strip() for u in urls_text.splitlines() if u.strip()]
    files = [(f.name, f.getvalue()) for f in uploads or []]
    if not name:
        st.error("Name the collection to add to.")
        return
    if not files and not urls:
        st.error("Choose files or enter URLs to add.")
        return
    done: dict[str, Any] = {}
    try:
        if files:
            done = _finish(client, client.upload_files(name, files))
        if urls and not done.get("error"):
            url_outcome = _finish(client, client.add_urls(name, urls))
            done = _merge(done, url_outcome)
    except UrlsUnsupported:
        done["error"] = "This server does not fetch URLs; upload the articles as files."
    except ApiError as exc:
        log.info("ingestion into %s refused: %s", name, exc)
        done["error"] = _api_error(exc)
    st.session_state[INGEST_OUTCOME] = done
    if done.get("result") is not None:
        # Show the collection written to once the page is redrawn (see app.pick_collection).
        st.session_state["pending-collection"] = name
    st.rerun()


def _merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Files then URLs into one outcome: counts added up, problems listed together."""
    a: IngestResult | None = first.get("result")
    b: IngestResult | None = second.get("result")
    merged: dict[str, Any] = {
        "error": second.get("error") or first.get("error"),
        "job": second.get("job") or first.get("job"),
    }
    if a is None or b is None:
        merged["result"] = a or b
        return merged
    merged["result"] = IngestResult(
        collection=b.collection,
        added=a.added + b.added,
        updated=a.updated + b.updated,
        unchanged=a.unchanged + b.unchanged,
        duplicates=[*a.duplicates, *b.duplicates],
        failed=[*a.failed, *b.failed],
        skipped=[*a.skipped, *b.skipped],
        chunks_embedded=a.chunks_embedded + b.chunks_embedded,
        chunks_total=a.chunks_total + b.chunks_total,
        seconds=a.seconds + b.seconds,
        documents=[*a.documents, *b.documents],
    )
    return merged


def _ask_delete(doc_id: str) -> None:
    st.session_state["confirm-delete"] = doc_id


def _cancel_delete() -> None:
    st.session_state.pop("confirm-delete", None)


def delete_documents(client: DossierClient, collection: str, docs: Sequence[Document]) -> None:
    """A delete button per document; deleting takes a second click to confirm."""
    notice = st.session_state.pop("deleted-notice", None)
    if notice:
        st.success(notice)
    pending = st.session_state.get("confirm-delete")
    with st.expander(f"Delete documents ({len(docs)})", expanded=bool(pending)):
        if len(docs) > DELETABLE_SHOWN:
            st.caption(f"The first {DELETABLE_SHOWN}; narrow the filter to find others.")
        for d in docs[:DELETABLE_SHOWN]:
            row = st.container(horizontal=True, key=f"doc-row-{d.doc_id}")
            row.markdown(
                f"**{render.esc(d.title)}** · {render.meta_line(d.publisher, d.published)}",
                unsafe_allow_html=True,
            )
            if pending != d.doc_id:
                row.button(
                    "Delete", key=f"delete-{d.doc_id}", on_click=_ask_delete, args=(d.doc_id,)
                )
                continue
            confirm = row.button("Confirm delete", key=f"confirm-{d.doc_id}", type="primary")
            row.button("Cancel", key=f"cancel-{d.doc_id}", on_click=_cancel_delete)
            if confirm:
                try:
                    client.delete_document(collection, d.doc_id)
                except ApiError as exc:
                    st.error(f"Not deleted: {_api_error(exc)}", icon="🚫")
                    return
                finally:
                    _cancel_delete()
                log.info("deleted document %s from %s", d.doc_id, collection)
                st.session_state["deleted-notice"] = f"Deleted “{d.title}” from {collection}."
                st.rerun()


def corpus(client: DossierClient, collection: str | None) -> None:
    st.title("Corpus")
    try:
        cols = client.collections()
    except ApiError as exc:
        st.error(str(exc), icon="🚫")
        return
    st.dataframe(
        [c.model_dump() for c in cols],
        hide_index=True,
        column_config={"name": "Collection", "documents": "Documents", "chunks": "Chunks"},
    )
    writable = client.may_write
    if writable:
        add_documents(client, collection)
    if not collection:
        st.info(
            "No collection yet. Ingest one with `dossier ingest PATH --collection NAME`"
            + (", or add files above." if writable else ".")
        )
        return
    st.subheader(f"Documents in {collection}")
    needle = st.text_input(
        "Filter documents", placeholder="title, publisher or tag", key="doc-filter"
    ).lower()
    try:
        docs = client.documents(collection)
    except ApiError as exc:
        st.error(str(exc), icon="🚫")
        return
    shown = [
        d
        for d in docs
        if not needle
        or needle in " ".join([d.title, d.publisher or "", *d.tags, d.source_path]).lower()
    ]
    rows = [
        {
            "title": d.title,
            "publisher": d.publisher,
            "published": d.published,
            "tags": ", ".join(d.tags),
            "chunks": d.chunks,
            "doc_id": d.doc_id,
        }
        for d in shown
    ]
    st.caption(f"{len(rows)} of {len(docs)} documents")
    st.dataframe(rows, hide_index=True)
    if writable and shown:
        delete_documents(client, collection, shown)

    st.subheader("Search passages")
    with st.form("search"):
        query = st.text_input("Query", placeholder=EXAMPLE_QUESTION, key="search-query")
        k = st.number_input("Passages", min_value=1, max_value=50, value=10, key="search-k")
        submitted = st.form_submit_button("Search", key="search-submit")
    if submitted and query.strip():
        try:
            result = client.search(query, collection, int(k))
        except ApiError as exc:
            st.error(str(exc), icon="🚫")
            return
        st.dataframe(
            [
                {
                    "rank": r,
                    "score": round(p.score, 4),
                    "dense": None if p.dense_similarity is None else round(p.dense_similarity, 4),
                    "lexical": None if p.lexical_score is None else round(p.lexical_score, 4),
                    "title": p.title,
                    "passage": p.text,
                }
                for r, p in enumerate(result.passages, 1)
            ],
            hide_index=True,
            key="search-results",
        )


# -- evals -------------------------------------------------------------------------------
def _metric_rows(report: SuiteReport) -> list[dict[str, Any]]:
    # Only suites run with the baseline answerer (squad2, bbc) have a baseline column.
    with_baseline = any(m.baseline is not None for m in report.metrics)
    return [
        {
            "metric": m.name,
            "value": m.value,
            "95% CI": "" if m.low is None or m.high is None else f"[{m.low:.3f}, {m.high:.3f}]",
            "n": m.n,
            **({"baseline": m.baseline} if with_baseline else {}),
            "threshold": m.threshold,
            "goal": m.goal,
            "status": m.status,
        }
        for m in report.metrics
    ]


def _suite_details(report: SuiteReport) -> None:
    st.subheader(f"{report.suite}: {report.status}")
    if report.error:
        st.error(report.error)
        return
    st.caption(
        f"Answerer `{report.answerer}`, support scorer `{report.scorer}`, top_k "
        f"{report.top_k}, {len(report.questions)} questions"
        + (f", {report.seconds:.1f} s" if report.seconds is not None else "")
        + f" · {report.path}"
    )
    for miss in report.misses:
        st.error(f"Threshold missed: {miss}", icon="🚫")
    st.dataframe(_metric_rows(report), hide_index=True)
    # Rates share one axis; counts and latencies would flatten them, so they stay in the table.
    points = [
        {"metric": m.name, "answerer": who, "value": value}
        for m in report.metrics
        for who, value in ((report.answerer or "system", m.value), ("baseline", m.baseline))
        if value is not None and 0.0 <= value <= 1.0
    ]
    if points:
        st.bar_chart(points, x="metric", y="value", color="answerer", stack=False)
    failed = [q for q in report.questions if not q["passed"]]
    with st.expander(f"Questions: {len(failed)} failed of {len(report.questions)}"):
        rows = failed + [q for q in report.questions if q["passed"]]
        st.dataframe(rows, hide_index=True)
    if report.ingest:
        st.caption("Ingestion: " + "; ".join(report.ingest))


def evals(reports_dir: Path) -> None:
    st.title("Evals")
    reports = latest_reports(reports_dir)
    if not reports:
        st.info(
            f"No eval reports yet. `dossier eval --suite seed` writes `seed.json` under "
            f"`{reports_dir}` (its `--out`; this page reads DOSSIER_EVALS_REPORTS_DIR); "
            "run it, then reload."
        )
        return
    st.dataframe([r.summary() for r in reports], hide_index=True)
    for r in reports:
        _suite_details(r)


# -- feedback review ---------------------------------------------------------------------
def feedback_review(client: DossierClient) -> None:
    st.title("Feedback")
    try:
        items = client.feedback(limit=500)
    except ApiError as exc:
        st.error(str(exc), icon="🚫")
        return
    if not items:
        st.info("No feedback yet. Thumbs under each answer in the chat end up here.")
        return
    st.dataframe([f.model_dump() for f in items], hide_index=True)
