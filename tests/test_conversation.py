"""Conversations: bounded history, the offline and LLM condensers, Dossier.chat and POST /v1/chat.

The LLM condenser's failure cases run against the scripted OpenAI-compatible server
(tests/fake_llm.py) over loopback; its happy path with a real model is in
tests/test_llm_llamacpp.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from dossier.chat.condense import (
    LLMCondenser,
    Message,
    OfflineCondenser,
    bounded_history,
    entities,
    leans_on_history,
    shown_sentences,
)
from dossier.engine import Dossier
from dossier.errors import InvalidInput
from dossier.llm.client import OpenAIChat, RetryPolicy
from tests.fake_llm import FakeState, Step

FIRST = "Why did Albania expel Iranian diplomats?"
FOLLOW_UP = "What did Iran say about it?"


def flat_idf(term: str) -> float:
    return 1.0


def user(text: str) -> Message:
    return Message("user", text)


def assistant(text: str) -> Message:
    return Message("assistant", text)


# -- history -------------------------------------------------------------------------


def test_bounded_history_keeps_the_latest_turns_never_the_first() -> None:
    messages = [Message("system", "be brief")]
    for i in range(10):
        messages += [user(f"question {i}"), assistant(f"answer {i}")]
    messages.append(user("last question"))
    history, question = bounded_history(messages, max_turns=3, max_chars=10_000)
    assert question == "last question"
    assert [m.content for m in history] == [
        "question 7",
        "answer 7",
        "question 8",
        "answer 8",
        "question 9",
        "answer 9",
    ]
    # A character budget drops the oldest messages first, too.
    history, _ = bounded_history(messages, max_turns=3, max_chars=25)
    assert [m.content for m in history] == ["question 9", "answer 9"]
    assert bounded_history(messages, max_turns=0, max_chars=10_000)[0] == []


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        ([], "at least one message"),
        ([user(FIRST), assistant("An answer.")], "must end with the user's question"),
        ([user("   ")], "empty"),
    ],
)
def test_bounded_history_rejects_what_cannot_be_answered(
    messages: list[Message], says: str
) -> None:
    with pytest.raises(InvalidInput, match=says):
        bounded_history(messages, max_turns=6, max_chars=8000)


# -- the offline condenser -------------------------------------------------------------


def test_entities_and_cues() -> None:
    assert entities("How much did Simon Fuller sell 19 Entertainment for?") == [
        "Simon Fuller",
        "19 Entertainment",
    ]
    assert entities("What injury has kept Ruud van Nistelrooy out of the team?") == [
        "Ruud van Nistelrooy"
    ]
    assert "Usher" in entities("Usher's nominations were announced.")
    assert entities("Why did the price rise?") == []
    assert leans_on_history("How far did its shares fall?")
    assert leans_on_history("And the other one?")
    assert leans_on_history("Why?")
    assert not leans_on_history("How much will closing nine British embassies save each year?")


def test_follow_up_carries_the_topic_and_a_new_topic_stands_alone() -> None:
    condenser = OfflineCondenser()
    history = [
        user("Why did EMI issue a profit warning early in 2005?"),
        assistant("It blamed poor sales since Christmas. [1]"),
    ]
    follow = condenser.condense(history, "How far did its shares fall?", flat_idf)
    assert follow.method == "offline"
    assert follow.question.startswith("How far did its shares fall?")
    assert "EMI" in follow.carried
    assert follow.asked == "How far did its shares fall?"

    switch = condenser.condense(
        history, "How many Soul Train Award nominations did Usher get?", flat_idf
    )
    assert switch.method == "topic-switch"
    assert switch.question == "How many Soul Train Award nominations did Usher get?"

    # After a switch, the topic is the new one.
    history += [user(switch.asked), assistant("Usher got 12 nominations. [1]")]
    after = condenser.condense(history, "Who else was nominated?", flat_idf)
    assert after.carried[0] == "Soul Train Award"  # the new topic's latest name
    assert "EMI" not in after.question

    first = condenser.condense([], FIRST, flat_idf)
    assert (first.question, first.method) == (FIRST, "as-asked")


def test_shown_sentences_are_the_earlier_answers_without_markers() -> None:
    shown = shown_sentences([user(FIRST), assistant("Albania cut ties. [1] Iran denied it. [2]")])
    assert shown == {"albania cut ties.", "iran denied it."}


# -- the LLM condenser, against a scripted server on loopback ------------------------------


@pytest.fixture
def llm_condenser(fake: tuple[str, FakeState]) -> Iterator[LLMCondenser]:
    chat = OpenAIChat(
        fake[0], "fake", timeout_s=5.0, max_tokens=64, temperature=0.0, policy=RetryPolicy(0, 0.0)
    )
    condenser = LLMCondenser(chat)
    yield condenser
    condenser.close()  # its sockets, now: a socket closed by the GC fails a later test


@pytest.mark.parametrize(
    ("step", "method"),
    [
        (Step(text="What did Iran say about Albania expelling its diplomats?"), "llm"),
        (Step(status=500, text="boom"), "offline"),  # the endpoint fails
        (Step(text="Bananas are yellow."), "offline"),  # shares nothing with the conversation
        (Step(text="   "), "offline"),  # nothing usable
    ],
)
def test_llm_condenser_uses_the_rewrite_or_falls_back_offline(
    fake: tuple[str, FakeState], llm_condenser: LLMCondenser, step: Step, method: str
) -> None:
    _, state = fake
    state.script[:] = [step]
    state.requests.clear()
    condenser = llm_condenser
    history = [user(FIRST), assistant("Albania cut ties with Iran over a cyberattack. [1]")]
    result = condenser.condense(history, FOLLOW_UP, flat_idf)
    assert result.method == method
    assert result.asked == FOLLOW_UP
    if method == "llm":
        assert result.question == "What did Iran say about Albania expelling its diplomats?"
        sent = json.dumps(state.requests[-1])
        assert FIRST in sent and "[1]" not in sent  # the history, markers removed
    else:
        assert "Albania" in result.carried


def test_llm_condenser_is_not_called_for_a_first_question_or_a_topic_switch(
    fake: tuple[str, FakeState], llm_condenser: LLMCondenser
) -> None:
    _, state = fake
    state.requests.clear()
    condenser = llm_condenser
    assert condenser.condense([], FIRST, flat_idf).method == "as-asked"
    history = [user(FIRST), assistant("Albania cut ties with Iran over a cyberattack. [1]")]
    switch = "How many Soul Train Award nominations did Usher get?"
    assert condenser.condense(history, switch, flat_idf).method == "topic-switch"
    assert state.requests == []


# -- the engine and the HTTP endpoint -----------------------------------------------------


def test_engine_chat_answers_the_follow_up_in_the_light_of_the_first_turn(
    seed_engine: Dossier,
) -> None:
    first = seed_engine.chat([user(FIRST)])
    assert first.standalone_question == FIRST and not first.refused
    follow = seed_engine.chat([user(FIRST), assistant(first.text), user(FOLLOW_UP)])
    assert follow.standalone_question is not None
    assert follow.standalone_question.startswith(FOLLOW_UP)
    assert "Albania" in follow.standalone_question
    assert not follow.refused and follow.citations


@pytest.fixture(scope="module")
def client(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=30) as c:
        yield c


def test_post_chat_returns_the_answer_with_its_standalone_question(client: httpx.Client) -> None:
    r = client.post("/v1/chat", json={"messages": [{"role": "user", "content": FIRST}]})
    assert r.status_code == 200, r.text
    first = r.json()
    messages = [
        {"role": "system", "content": "You are helpful."},  # read and ignored
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": first["answer"]},
        {"role": "user", "content": FOLLOW_UP},
    ]
    r = client.post("/v1/chat", json={"messages": messages, "collection": "albania-iran"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "Albania" in body["standalone_question"]
    assert body["citations"] and body["question"] == body["standalone_question"]


def test_post_chat_streams_the_standalone_question_first(client: httpx.Client) -> None:
    messages = [
        {"role": "user", "content": FIRST},
        {"role": "assistant", "content": "Albania cut ties with Iran. [1]"},
        {"role": "user", "content": FOLLOW_UP},
    ]
    with client.stream("POST", "/v1/chat", json={"messages": messages, "stream": True}) as r:
        assert r.status_code == 200
        text = r.read().decode()
    events = [block.split("\n", 1) for block in text.strip().split("\n\n")]
    names = [e[0].removeprefix("event: ") for e in events]
    assert names[0] == "passages" and names[-2:] == ["citations", "done"]
    passages = json.loads(events[0][1].removeprefix("data: "))
    assert "Albania" in passages["standalone_question"]
    final = json.loads(events[-2][1].removeprefix("data: "))
    assert final["standalone_question"] == passages["standalone_question"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"messages": []}, 422, "messages"),
        ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "role 'user'"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, 422, "role"),
        ({"messages": [{"role": "user", "content": "  "}]}, 400, "empty"),
        ({"messages": [{"role": "user", "content": FIRST}], "top_k": 0}, 422, "top_k"),
    ],
)
def test_post_chat_bad_input_says_what_to_fix(
    client: httpx.Client, body: dict[str, object], status: int, says: str
) -> None:
    r = client.post("/v1/chat", json=body)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]["message"]
