"""The UI's HTTP client against a real API on loopback, including each failure mode."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.ui.conftest import FOLLOW_UP, carries_topic
from ui.client import (
    MAX_CHAT_MESSAGES,
    Answer,
    ApiError,
    ApiResponseError,
    ApiTimeout,
    ApiUnreachable,
    ChatMessage,
    DossierClient,
    Retrieved,
    TextDelta,
)
from ui.views import conversation as page_history

SEED = "albania-iran"
QUESTION = "Why did Albania expel Iranian diplomats?"


@pytest.fixture
def client(live_api: str) -> Iterator[DossierClient]:
    with DossierClient(live_api, timeout_s=30) as c:
        yield c


def test_ask_returns_cited_sentences_that_match_the_article(client: DossierClient) -> None:
    answer = client.ask(QUESTION, SEED)
    assert not answer.refused
    assert answer.citations and answer.sentences
    for sentence in answer.sentences:
        for n in sentence.citations:
            assert f"[{n}]" in answer.answer
    doc = client.document(answer.citations[0].doc_id, SEED)
    for c in answer.citations:
        assert doc.text[c.start : c.end] == c.quote
        assert c.quote in c.passage_text


def test_collections_documents_and_search(client: DossierClient) -> None:
    (col,) = [c for c in client.collections() if c.name == SEED]
    assert col.documents == 1 and col.chunks > 1
    docs = client.documents(SEED)
    assert [d.title for d in docs] == [
        "Albania cuts ties to Iran, blaming it for massive cyberattack"
    ]
    result = client.search("diplomats expelled", SEED, k=3)
    assert len(result.passages) == 3
    scores = [p.score for p in result.passages]
    assert scores == sorted(scores, reverse=True)


def test_feedback_round_trip(client: DossierClient) -> None:
    answer = client.ask(QUESTION, SEED)
    saved = client.send_feedback(answer, "down", "misses the cyberattack attribution")
    assert saved.rating == "down" and saved.id > 0
    listed = {f.id: f for f in client.feedback()}
    assert listed[saved.id].comment == "misses the cyberattack attribution"
    assert listed[saved.id].citations == [c.passage_id for c in answer.citations]
    assert listed[saved.id].question == QUESTION


def test_feedback_endpoint_rejects_a_bad_rating(live_api: str) -> None:
    resp = httpx.post(
        f"{live_api}/v1/feedback", json={"rating": "meh", "question": "q", "answer": "a"}
    )
    assert resp.status_code == 422
    assert resp.json()["error"]["type"] == "invalid_input"


def test_unknown_collection_is_a_clear_404(client: DossierClient) -> None:
    with pytest.raises(ApiResponseError) as err:
        client.ask(QUESTION, "no-such-collection")
    assert err.value.status == 404
    assert err.value.kind == "collection_not_found"
    assert "Unknown collection 'no-such-collection'" in str(err.value)


def test_unreachable_api_says_how_to_start_it(closed_port_url: str) -> None:
    with DossierClient(closed_port_url, timeout_s=2) as c, pytest.raises(ApiUnreachable) as err:
        c.collections()
    assert closed_port_url in str(err.value)
    assert "make run" in str(err.value)


def test_slow_answer_times_out_with_the_setting_named(slow_api: str) -> None:
    with DossierClient(slow_api, timeout_s=0.3) as c:
        assert c.collections()  # the fast endpoints still answer
        with pytest.raises(ApiTimeout) as err:
            c.ask(QUESTION, SEED)
    assert "0.3 s" in str(err.value) and "DOSSIER_UI_TIMEOUT_S" in str(err.value)


def test_a_non_dossier_error_page_is_reported_by_status() -> None:
    # A reverse proxy's HTML error page: no server of ours produces one, so fake it.
    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>Bad Gateway</html>")

    fake = httpx.MockTransport(proxy)
    with DossierClient("http://proxy", transport=fake) as c, pytest.raises(ApiResponseError) as err:
        c.collections()
    assert err.value.status == 502 and "HTTP 502" in str(err.value)


def test_a_response_that_is_not_the_contract_is_an_api_error() -> None:
    def other(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"hello": "world"})

    fake = httpx.MockTransport(other)
    with DossierClient("http://other", transport=fake) as c, pytest.raises(ApiError, match="does"):
        c.collections()


def conversation(client: DossierClient) -> list[ChatMessage]:
    first = client.chat([ChatMessage(role="user", content=QUESTION)], SEED)
    assert first.standalone_question == QUESTION  # a first question is searched as asked
    return [
        ChatMessage(role="user", content=QUESTION),
        ChatMessage(role="assistant", content=first.answer),
        ChatMessage(role="user", content=FOLLOW_UP),
    ]


def test_chat_searches_the_follow_up_with_the_topic(client: DossierClient) -> None:
    answer = client.chat(conversation(client), SEED)
    assert carries_topic(answer.standalone_question), answer.standalone_question
    assert answer.question == answer.standalone_question  # what was answered
    assert not answer.degraded and answer.degraded_reason is None


def test_chat_stream_yields_passages_deltas_then_the_same_answer(client: DossierClient) -> None:
    messages = conversation(client)
    events = list(client.chat_stream(messages, SEED))
    retrieved, *deltas, final = events
    assert isinstance(retrieved, Retrieved) and retrieved.passages
    assert deltas and all(isinstance(d, TextDelta) for d in deltas)
    assert isinstance(final, Answer)
    whole = client.chat(messages, SEED)
    assert retrieved.standalone_question == final.standalone_question == whole.standalone_question
    assert (final.answer, final.citations, final.refused) == (
        whole.answer,
        whole.citations,
        whole.refused,
    )
    assert [p.passage_id for p in final.passages] == [p.passage_id for p in whole.passages]
    assert final.timings and "".join(d.text for d in deltas if isinstance(d, TextDelta))


def test_chat_stream_errors_before_the_stream_opens(client: DossierClient) -> None:
    with pytest.raises(ApiResponseError) as err:
        list(client.chat_stream([ChatMessage(role="user", content=QUESTION)], "no-such"))
    assert err.value.status == 404 and "no-such" in str(err.value)


def test_chat_stream_to_a_closed_port_is_unreachable(closed_port_url: str) -> None:
    with DossierClient(closed_port_url) as c, pytest.raises(ApiUnreachable):
        next(c.chat_stream([ChatMessage(role="user", content=QUESTION)]))


def test_a_long_conversation_is_trimmed_to_what_one_request_may_carry(
    client: DossierClient,
) -> None:
    """The chat page's history of 60 turns (one failed) is 120 messages; it sends the latest
    it may (the API's limit), starting with a question, and the API answers them."""
    answer = client.ask(QUESTION, SEED)
    turns: list[dict[str, Any]] = []
    for i in range(60):
        turns.append({"role": "user", "text": f"Question {i} about Albania?"})
        failed = {"role": "assistant", "error": "The API did not answer", "kind": "timeout"}
        turns.append(failed if i == 30 else {"role": "assistant", "answer": answer})
    turns.append({"role": "user", "text": FOLLOW_UP})
    messages = page_history(turns)
    assert len(messages) == MAX_CHAT_MESSAGES and messages[0].role == "user"
    assert messages[-1] == ChatMessage(role="user", content=FOLLOW_UP)
    assert all(m.content != "The API did not answer" for m in messages)
    assert client.chat(messages, SEED).answer
