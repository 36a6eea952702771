"""/v1/chat/completions and /v1/models through real OpenAI clients on a loopback server.

The ``openai`` SDK (sync, streaming, async) and llama-index's ``OpenAILike`` talk to a
live server over the seed collection, as an app that already speaks the OpenAI API would.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from dossier.answer.llm import LLMAnswerer
from dossier.answer.registry import build_answerer
from dossier.engine import Dossier
from dossier.testing import LiveServer
from dossier.verify.offline import OfflineSupportScorer
from service.app import create_app
from service.keys import KEYS_FILE, KeyStore
from tests.conftest import SEED_COLLECTION, alpha_beta_engine, make_settings
from tests.fake_llm import FakeState, Step, create_fake_app

QUESTION = "Why did Albania expel Iranian diplomats?"
OFF_TOPIC = "What is the capital of France?"
MARKER = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="module")
def client(api_url: str) -> Iterator[openai.OpenAI]:
    # No key: the loopback default needs none; the SDK insists on some string.
    with openai.OpenAI(base_url=f"{api_url}/v1", api_key="unused", max_retries=0) as c:
        yield c


@pytest.fixture(scope="module")
def http(api_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_url, timeout=30) as c:
        yield c


def user(text: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": text}]


def check_cited(content: str, extra: dict[str, Any], notes: list[Any], http: httpx.Client) -> None:
    """Annotations cover the [n] markers in content; citations quote their documents."""
    citations = {c["number"]: c for c in extra["citations"]}
    markers = [(m.start(), m.end(), int(m.group(1))) for m in MARKER.finditer(content)]
    assert markers, content
    assert {n for _, _, n in markers} == set(citations)
    assert len(notes) == len(markers)
    for note, (start, end, n) in zip(notes, markers, strict=True):
        cited = note["url_citation"] if isinstance(note, dict) else note.url_citation.to_dict()
        assert (cited["start_index"], cited["end_index"]) == (start, end)
        assert content[cited["start_index"] : cited["end_index"]] == f"[{n}]"
        c = citations[n]
        assert cited["title"] == c["title"]
        url = urlsplit(cited["url"])
        assert url.path == f"/v1/documents/{c['doc_id']}"
        assert parse_qs(url.query) == {"collection": [SEED_COLLECTION]}
        assert url.fragment == f"char={c['start']},{c['end']}"
        # The link is live: the document it names holds the quote at start:end.
        doc = http.get(f"{url.path}?{url.query}").json()
        assert doc["text"][c["start"] : c["end"]] == c["quote"]
        assert c["quote"] in c["passage_text"]
    assert {"doc_id", "title", "publisher", "published", "quote", "start", "end", "url"} <= set(
        next(iter(citations.values()))
    )


def test_models_are_the_collections(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models] == [SEED_COLLECTION]
    assert models.data[0].owned_by == "dossier" and models.data[0].object == "model"
    assert client.models.retrieve(SEED_COLLECTION).id == SEED_COLLECTION
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("nope")
    assert err.value.code == "model_not_found"


def test_sync_completion_has_annotations_and_citations(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    completion = client.chat.completions.create(model=SEED_COLLECTION, messages=user(QUESTION))
    assert completion.object == "chat.completion" and completion.model == SEED_COLLECTION
    choice = completion.choices[0]
    content = choice.message.content or ""
    assert choice.finish_reason == "stop" and choice.message.role == "assistant"
    assert "diplomat" in content
    extra = completion.model_extra or {}
    assert extra["refused"] is False and extra["answerable_probability"] > 0.5
    # Typed by the SDK: message.annotations are url_citation objects.
    notes = choice.message.annotations or []
    assert all(n.type == "url_citation" for n in notes)
    check_cited(content, extra, notes, http)
    # Usage counts words (documented): the question's and the answer's.
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == len(QUESTION.split())
    assert completion.usage.completion_tokens == len(content.split())
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + len(content.split())


def test_text_parts_and_ignored_fields_are_accepted(client: openai.OpenAI) -> None:
    plain = client.chat.completions.create(model=SEED_COLLECTION, messages=user(QUESTION))
    parts = client.chat.completions.create(
        model=SEED_COLLECTION,
        messages=[
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "text", "text": QUESTION}]},
        ],
        temperature=0.7,
        max_tokens=50,
        top_p=0.9,
        user="someone",
        n=1,
    )
    assert parts.choices[0].message.content == plain.choices[0].message.content


def test_refusal_is_a_normal_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(model=SEED_COLLECTION, messages=user(OFF_TOPIC))
    message = completion.choices[0].message
    assert "does not say" in (message.content or "")
    assert completion.choices[0].finish_reason == "stop"
    assert not message.annotations
    extra = completion.model_extra or {}
    assert extra["refused"] is True and extra["citations"] == []


def test_unknown_model_is_openai_404(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=user(QUESTION))
    assert err.value.status_code == 404
    assert err.value.code == "model_not_found" and err.value.param == "model"
    assert "The model 'nope' does not exist" in err.value.message
    assert SEED_COLLECTION in err.value.message  # says which models there are


@pytest.mark.parametrize(
    ("kwargs", "param", "needle"),
    [
        ({"n": 2}, "n", "only n=1"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages.0.content",
            "only text content parts",
        ),
        ({"messages": []}, "messages", "at least 1"),
        ({"temperature": 5}, "temperature", "less than or equal to 2"),
        ({"temperature": False}, "temperature", "valid number"),
        (
            {
                "messages": [
                    {"role": "user", "content": "q?"},
                    {"role": "assistant", "content": "a"},
                ]
            },
            None,
            "must end with the user's question",
        ),
    ],
)
def test_bad_request_is_openai_400(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str | None, needle: str
) -> None:
    args: dict[str, Any] = {"model": SEED_COLLECTION, "messages": user(QUESTION), **kwargs}
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(**args)
    assert err.value.status_code == 400
    assert needle in err.value.message
    assert err.value.param == param
    body = err.value.body
    assert isinstance(body, dict) and body["type"] == "invalid_request_error"


def test_errors_keep_openai_shape_on_these_paths_only(http: httpx.Client) -> None:
    r = http.get("/v1/chat/completions")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = http.post("/v1/chat/completions", content=b"{not json", headers={"content-type": "json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
    # The rest of /v1 keeps Dossier's own shape and its 422.
    r = http.post("/v1/chat", json={"messages": []})
    assert r.status_code == 422 and set(r.json()["error"]) == {"type", "message"}


def test_keyless_server_ignores_foreign_tokens_but_not_wrong_keys(http: httpx.Client) -> None:
    # OpenAI clients must send a key; where none is needed, "sk-..." is no key...
    r = http.get("/v1/models", headers={"Authorization": "Bearer sk-anything"})
    assert r.status_code == 200
    # ...but a Dossier key that is wrong says so, on every route.
    for path in ("/v1/models", "/v1/collections"):
        r = http.get(path, headers={"Authorization": "Bearer dsk_000000000000_" + "x" * 43})
        assert r.status_code == 401, path


def test_sync_streaming_sends_chunks_then_citations(
    client: openai.OpenAI, http: httpx.Client
) -> None:
    whole = client.chat.completions.create(model=SEED_COLLECTION, messages=user(QUESTION))
    chunks = list(
        client.chat.completions.create(
            model=SEED_COLLECTION,
            messages=user(QUESTION),
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    *body, last, usage = chunks
    content = "".join(c.choices[0].delta.content or "" for c in [*body, last])
    assert content == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in body] == [None] * len(body)
    assert last.choices[0].finish_reason == "stop"
    extra = last.model_extra or {}
    assert extra["citations"] == (whole.model_extra or {})["citations"]
    assert extra["answer"] == content and extra["refused"] is False
    notes = (last.choices[0].delta.model_extra or {})["annotations"]
    check_cited(content, extra, notes, http)
    assert usage.choices == [] and usage.usage is not None
    assert usage.usage.completion_tokens == len(content.split())


def test_sdk_stream_helper_assembles_the_annotations(client: openai.OpenAI) -> None:
    """The SDK's own accumulator turns the final delta's annotations into typed ones."""
    with client.chat.completions.stream(model=SEED_COLLECTION, messages=user(QUESTION)) as s:
        final = s.get_final_completion()
    message = final.choices[0].message
    notes = message.annotations or []
    assert notes and all(n.type == "url_citation" for n in notes)
    content = message.content or ""
    assert [content[n.url_citation.start_index : n.url_citation.end_index] for n in notes] == [
        m.group(0) for m in MARKER.finditer(content)
    ]


def test_streamed_refusal_says_so(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(model=SEED_COLLECTION, messages=user(OFF_TOPIC), stream=True)
    )
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert "does not say" in content
    extra = chunks[-1].model_extra or {}
    assert extra["refused"] is True and extra["citations"] == []
    assert (chunks[-1].choices[0].delta.model_extra or {})["annotations"] == []


def test_async_client(api_url: str, http: httpx.Client) -> None:
    async def run() -> tuple[list[Any], str]:
        async with openai.AsyncOpenAI(
            base_url=f"{api_url}/v1", api_key="unused", max_retries=0
        ) as aclient:
            # Concurrent requests, as an async app would send them.
            completions = await asyncio.gather(
                *(
                    aclient.chat.completions.create(model=SEED_COLLECTION, messages=user(q))
                    for q in (QUESTION, OFF_TOPIC, QUESTION)
                )
            )
            stream = await aclient.chat.completions.create(
                model=SEED_COLLECTION, messages=user(QUESTION), stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream])
            return completions, text

    (answered, refused, again), streamed = asyncio.run(run())
    content = answered.choices[0].message.content or ""
    check_cited(content, answered.model_extra or {}, answered.choices[0].message.annotations, http)
    assert (refused.model_extra or {})["refused"] is True
    assert again.choices[0].message.content == content == streamed


def test_three_turn_conversation_carries_the_topic(client: openai.OpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = []
    standalone: list[str] = []
    answers: list[str] = []
    follow_up = "What did Iran say about it?"
    for question in (QUESTION, "When did the attack happen?", follow_up):
        messages.append({"role": "user", "content": question})
        completion = client.chat.completions.create(model=SEED_COLLECTION, messages=messages)
        answer = completion.choices[0].message.content or ""
        messages.append({"role": "assistant", "content": answer})
        standalone.append((completion.model_extra or {})["standalone_question"])
        answers.append(answer)
    assert standalone[0] == QUESTION  # nothing to carry on the first turn
    assert "July 15" in answers[1]
    # The follow-up is searched with the topic it leans on ("it"), taken from earlier turns.
    assert standalone[2].startswith(follow_up) and standalone[2] != follow_up
    carried = standalone[2][len(follow_up) :]
    earlier = " ".join(str(m.get("content")) for m in messages[:-2]).lower()
    words = re.findall(r"\w+", carried.lower())
    assert words and all(w in earlier for w in words)
    assert re.search(r"albania|tirana|rama|diplomat", carried, re.IGNORECASE)
    assert MARKER.search(answers[2])


def test_llama_index_openai_like(api_url: str) -> None:
    from llama_index.core.base.llms.types import ChatMessage, MessageRole
    from llama_index.llms.openai_like import OpenAILike

    llm = OpenAILike(
        model=SEED_COLLECTION,
        api_base=f"{api_url}/v1",
        api_key="unused",
        is_chat_model=True,  # complete() goes through /v1/chat/completions
        context_window=4096,
        max_retries=0,
    )
    completed = llm.complete(QUESTION)
    assert MARKER.search(completed.text) and "diplomat" in completed.text
    chat = llm.chat([ChatMessage(role=MessageRole.USER, content=QUESTION)])
    assert chat.message.content == completed.text
    streamed = list(llm.stream_chat([ChatMessage(role=MessageRole.USER, content=QUESTION)]))
    assert streamed and streamed[-1].message.content == completed.text
    assert "".join(r.delta or "" for r in streamed) == completed.text


# -- with the LLM answerer (a scripted OpenAI-compatible endpoint) ----------------------


@pytest.fixture(scope="module")
def llm_server(seed_engine: Dossier) -> Iterator[tuple[openai.OpenAI, FakeState]]:
    state = FakeState(script=[Step(text="unused")])
    with LiveServer(create_fake_app(state)) as fake:
        settings = seed_engine.settings.model_copy(
            update={
                "answerer": "llm",
                "llm_base_url": f"{fake.url}/v1",
                "llm_model": "fake",
                "llm_timeout_s": 5.0,
                "llm_retries": 0,
            }
        )
        answerer = build_answerer(settings)
        assert isinstance(answerer, LLMAnswerer)
        answerer._scorer = OfflineSupportScorer(seed_engine.embedder)  # no second model load
        engine = Dossier(
            settings, store=seed_engine.store, embedder=seed_engine.embedder, answerer=answerer
        )
        with (
            LiveServer(create_app(settings, engine)) as live,
            openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0) as c,
        ):
            yield c, state


def test_llm_stream_dying_ends_with_the_extractive_answer(
    llm_server: tuple[openai.OpenAI, FakeState], http: httpx.Client
) -> None:
    client, state = llm_server
    state.script[:] = [Step(text="Albania cut ties with Iran [1]. " * 10, die_after=6)]
    chunks = list(
        client.chat.completions.create(model=SEED_COLLECTION, messages=user(QUESTION), stream=True)
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks)
    last = chunks[-1]
    assert last.choices[0].finish_reason == "stop"
    extra = last.model_extra or {}
    assert extra["degraded"] is True and "broke off" in extra["degraded_reason"]
    # The LLM's partial text went out first; the verified answer that replaces it is
    # `answer`, and the annotations index into it.
    assert streamed.startswith("Albania cut") and extra["answer"] != streamed
    notes = (last.choices[0].delta.model_extra or {})["annotations"]
    check_cited(extra["answer"], extra, notes, http)


def test_llm_stream_stops_when_the_client_leaves(
    llm_server: tuple[openai.OpenAI, FakeState],
) -> None:
    client, state = llm_server
    total = 400
    state.tokens_sent, state.stream_finished_at = 0, None
    state.script[:] = [Step(text=" ".join(["word"] * total), token_delay_s=0.01)]
    stream = client.chat.completions.create(
        model=SEED_COLLECTION, messages=user(QUESTION), stream=True
    )
    chunks = iter(stream)
    assert next(chunks).choices[0].delta.role == "assistant"
    assert next(chunks).choices[0].delta.content
    stream.close()
    deadline = time.monotonic() + 3
    while state.stream_finished_at is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state.stream_finished_at is not None
    assert state.tokens_sent < total / 2, state.tokens_sent


# -- with keys -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("openai-auth")
    engine = alpha_beta_engine(tmp, auth=True)
    settings = engine.settings
    keys = KeyStore(settings.data_dir / KEYS_FILE)
    with LiveServer(create_app(settings, engine)) as live:
        yield {
            "url": f"{live.url}/v1",
            "alpha": keys.create("alpha-app", "alpha", "read")[1],
            "all": keys.create("all-app", "*", "read")[1],
        }


def test_models_follow_the_keys_scope(keyed: dict[str, str]) -> None:
    def models(key: str) -> list[str]:
        with openai.OpenAI(base_url=keyed["url"], api_key=key, max_retries=0) as c:
            return [m.id for m in c.models.list()]

    assert models(keyed["all"]) == ["alpha", "beta"]
    assert models(keyed["alpha"]) == ["alpha"]
    with openai.OpenAI(base_url=keyed["url"], api_key=keyed["alpha"], max_retries=0) as c:
        answer = c.chat.completions.create(model="alpha", messages=user("What reopened?"))
        assert answer.model == "alpha" and answer.choices[0].message.content
        # Out of scope reads as unknown, and the message lists only what the key sees.
        with pytest.raises(openai.NotFoundError) as err:
            c.chat.completions.create(model="beta", messages=user("What ended?"))
        assert (
            err.value.code == "model_not_found"
            and "beta" not in err.value.message.split("Known collections:")[1].split(".")[0]
        )
        with pytest.raises(openai.NotFoundError):
            c.models.retrieve("beta")
    with (
        openai.OpenAI(base_url=keyed["url"], api_key="dsk_wrong", max_retries=0) as c,
        pytest.raises(openai.AuthenticationError) as denied,
    ):
        c.models.list()
    assert denied.value.status_code == 401
    assert isinstance(denied.value.body, dict)
    assert denied.value.body["type"] == "authentication_error"
    assert "API key" in denied.value.message


def test_rate_limit_is_openai_429(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, embedder="hashing", rate_limit_burst=2, rate_limit_per_minute=1
    )
    with (
        LiveServer(create_app(settings)) as live,
        openai.OpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0) as c,
    ):
        assert c.models.list().data == []  # nothing ingested: no models
        c.models.list()
        with pytest.raises(openai.RateLimitError) as err:
            c.models.list()
    assert err.value.status_code == 429 and err.value.code == "rate_limited"
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert "retry after" in err.value.message
