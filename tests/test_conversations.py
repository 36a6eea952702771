"""Server-side conversations (/v1/conversations) over HTTP on the ingested seed collection:
CRUD, follow-ups read in context, streaming, the message cap, key isolation, and
persistence across a restart into a server with two worker processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from dossier.engine import Dossier
from dossier.testing import LiveServer, free_port, wait_for_http
from dossier.text import terms
from service.app import create_app
from service.keys import KEYS_FILE, KeyStore
from tests.conftest import SEED_COLLECTION

FIRST = "Why did Albania expel Iranian diplomats?"
FOLLOW_UP = "What did Iran say about it?"
DOSSIER = Path(sys.executable).parent / "dossier"


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json() if r.content else None


def _error(r: httpx.Response, status: int, kind: str) -> str:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["type"] == kind, body
    message: str = body["message"]
    return message


def _sse(text: str) -> list[tuple[str, Any]]:
    events = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def _assert_carries_first_topic(answer: dict[str, Any]) -> None:
    """The follow-up was searched with the first turn's topic, not as typed."""
    standalone = answer["standalone_question"]
    assert standalone.startswith(FOLLOW_UP) and standalone != FOLLOW_UP, standalone
    # Words of the first question that the follow-up itself does not have ("expel").
    carried = set(terms(standalone.removeprefix(FOLLOW_UP))) & set(terms(FIRST))
    assert carried - set(terms(FOLLOW_UP)), standalone


def test_crud_and_a_follow_up_read_in_context(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=60) as c:
        # No body at all: every field is optional.
        conv = _ok(c.post("/v1/conversations"), 201)
        assert conv["collection"] == SEED_COLLECTION
        assert conv["messages"] == [] and conv["message_count"] == 0 and conv["title"] is None
        cid = conv["id"]

        first = _ok(c.post(f"/v1/conversations/{cid}/messages", json={"content": FIRST}))
        assert first["conversation_id"] == cid
        assert not first["refused"] and first["citations"]
        assert first["standalone_question"] == FIRST  # nothing earlier to read
        second = _ok(c.post(f"/v1/conversations/{cid}/messages", json={"content": FOLLOW_UP}))
        _assert_carries_first_topic(second)

        # The same history sent to the stateless /v1/chat gets the same reading and answer.
        history = [
            {"role": "user", "content": FIRST},
            {"role": "assistant", "content": first["answer"]},
            {"role": "user", "content": FOLLOW_UP},
        ]
        stateless = _ok(c.post("/v1/chat", json={"messages": history}))
        assert stateless["standalone_question"] == second["standalone_question"]
        assert stateless["answer"] == second["answer"]

        stored = _ok(c.get(f"/v1/conversations/{cid}"))
        assert stored["message_count"] == 4 and stored["title"] == FIRST
        msgs = stored["messages"]
        assert [m["role"] for m in msgs] == ["user", "assistant", "user", "assistant"]
        assert [m["content"] for m in msgs] == [
            FIRST,
            first["answer"],
            FOLLOW_UP,
            second["answer"],
        ]
        assert [m["id"] for m in msgs[1::2]] == [first["message_id"], second["message_id"]]
        assert [m["id"] for m in msgs[::2]] == [
            first["question_message_id"],
            second["question_message_id"],
        ]
        for m, given in zip(msgs[1::2], (first, second), strict=True):
            for field in ("citations", "sentences", "standalone_question", "refused", "degraded"):
                assert m[field] == given[field], field
        assert msgs[0]["citations"] == [] and msgs[0]["refused"] is None

        # Listed newest first, paged by `before`.
        other = _ok(c.post("/v1/conversations", json={"title": "  later  "}), 201)
        assert other["title"] == "later"
        listed = _ok(c.get("/v1/conversations", params={"limit": 2}))
        assert [x["id"] for x in listed] == [other["id"], cid]
        assert listed[1]["message_count"] == 4 and "messages" not in listed[1]
        page2 = _ok(c.get("/v1/conversations", params={"limit": 1, "before": other["id"]}))
        assert [x["id"] for x in page2] == [cid]

        assert c.delete(f"/v1/conversations/{cid}").status_code == 204
        message = _error(c.get(f"/v1/conversations/{cid}"), 404, "conversation_not_found")
        assert cid in message and "POST /v1/conversations" in message
        _error(c.delete(f"/v1/conversations/{cid}"), 404, "conversation_not_found")
        _error(
            c.post(f"/v1/conversations/{cid}/messages", json={"content": FIRST}),
            404,
            "conversation_not_found",
        )
        assert cid not in [x["id"] for x in _ok(c.get("/v1/conversations"))]
        c.delete(f"/v1/conversations/{other['id']}")


def test_bad_input_says_what_to_fix(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=60) as c:
        missing = _error(
            c.post("/v1/conversations", json={"collection": "no-such"}), 404, "collection_not_found"
        )
        assert "albania-iran" in missing
        _error(c.post("/v1/conversations", json={"topic": "x"}), 422, "invalid_input")
        cid = _ok(c.post("/v1/conversations", json={}), 201)["id"]
        url = f"/v1/conversations/{cid}/messages"
        assert "content" in _error(c.post(url, json={"content": "   "}), 422, "invalid_input")
        assert "content" in _error(c.post(url, json={}), 422, "invalid_input")
        assert "top_k" in _error(
            c.post(url, json={"content": FIRST, "top_k": 0}), 422, "invalid_input"
        )
        assert _ok(c.get(f"/v1/conversations/{cid}"))["message_count"] == 0
        c.delete(f"/v1/conversations/{cid}")


def test_streamed_answer_is_stored_when_the_stream_completes(api_url: str) -> None:
    with httpx.Client(base_url=api_url, timeout=60) as c:
        cid = _ok(c.post("/v1/conversations"), 201)["id"]
        _ok(c.post(f"/v1/conversations/{cid}/messages", json={"content": FIRST}))
        r = c.post(f"/v1/conversations/{cid}/messages", json={"content": FOLLOW_UP, "stream": True})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = _sse(r.text)
        assert [e for e, _ in events] == ["passages", "delta", "citations", "done"]
        passages, citations, done = events[0][1], events[2][1], events[3][1]
        _assert_carries_first_topic(passages)
        assert done["stored"] is True and done["conversation_id"] == cid
        stored = _ok(c.get(f"/v1/conversations/{cid}"))["messages"]
        assert len(stored) == 4
        assert stored[-1]["id"] == done["message_id"]
        assert stored[-2]["id"] == done["question_message_id"]
        assert stored[-1]["content"] == citations["answer"]
        assert stored[-1]["citations"] == citations["citations"]
        assert stored[-1]["standalone_question"] == passages["standalone_question"]
        c.delete(f"/v1/conversations/{cid}")


@pytest.fixture(scope="module")
def small_cap_url(seed_engine: Dossier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The seed engine served with room for 4 messages (2 turns) per conversation."""
    settings = seed_engine.settings.model_copy(
        update={"data_dir": tmp_path_factory.mktemp("cap"), "conversation_max_messages": 4}
    )
    with LiveServer(create_app(settings, seed_engine)) as server:
        yield server.url


def test_a_full_conversation_says_to_start_a_new_one(small_cap_url: str) -> None:
    with httpx.Client(base_url=small_cap_url, timeout=60) as c:
        cid = _ok(c.post("/v1/conversations"), 201)["id"]
        url = f"/v1/conversations/{cid}/messages"
        _ok(c.post(url, json={"content": FIRST}))
        _ok(c.post(url, json={"content": FOLLOW_UP}))
        for stream in (False, True):
            r = c.post(url, json={"content": "And the United States?", "stream": stream})
            message = _error(r, 409, "conversation_full")
            assert "4 messages" in message and "POST /v1/conversations" in message
        assert _ok(c.get(f"/v1/conversations/{cid}"))["message_count"] == 4


@pytest.fixture(scope="module")
def keyed(
    seed_engine: Dossier, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The seed engine behind API keys: two readers of the seed collection, one of another."""
    settings = seed_engine.settings.model_copy(
        update={"data_dir": tmp_path_factory.mktemp("keyed"), "auth": True}
    )
    keys = KeyStore(settings.data_dir / KEYS_FILE)
    tokens = {
        "alice": keys.create("alice", SEED_COLLECTION, "read")[1],
        "bob": keys.create("bob", "*", "admin")[1],
        "carol": keys.create("carol", "other-news", "read")[1],
    }
    with LiveServer(create_app(settings, seed_engine)) as server:
        yield {"url": server.url, "tokens": tokens}


def test_a_conversation_belongs_to_the_key_that_created_it(keyed: dict[str, Any]) -> None:
    def client(who: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {keyed['tokens'][who]}"} if who else {}
        return httpx.Client(base_url=keyed["url"], headers=headers, timeout=60)

    with client("alice") as alice, client("bob") as bob, client("carol") as carol:
        cid = _ok(alice.post("/v1/conversations"), 201)["id"]
        _ok(alice.post(f"/v1/conversations/{cid}/messages", json={"content": FIRST}))
        assert [x["id"] for x in _ok(alice.get("/v1/conversations"))] == [cid]

        # Another key, even an admin, sees a 404 worded as for an id that never existed.
        theirs = _error(bob.get(f"/v1/conversations/{cid}"), 404, "conversation_not_found")
        unknown = "conv_" + "0" * 24
        never = _error(bob.get(f"/v1/conversations/{unknown}"), 404, "conversation_not_found")
        assert theirs.replace(cid, "ID") == never.replace(unknown, "ID")
        _error(
            bob.post(f"/v1/conversations/{cid}/messages", json={"content": FOLLOW_UP}),
            404,
            "conversation_not_found",
        )
        _error(bob.delete(f"/v1/conversations/{cid}"), 404, "conversation_not_found")
        assert _ok(bob.get("/v1/conversations")) == []
        _error(bob.get("/v1/conversations", params={"before": cid}), 404, "conversation_not_found")

        # A key reaches only its own collections, as /v1/ask does.
        out_of_scope = _error(carol.post("/v1/conversations"), 404, "collection_not_found")
        assert "Known collections" not in out_of_scope  # she may see none of them

        with client(None) as nobody:
            _error(nobody.get(f"/v1/conversations/{cid}"), 401, "not_authenticated")

        # Untouched by the others' attempts.
        stored = _ok(alice.get(f"/v1/conversations/{cid}"))
        assert stored["message_count"] == 2


@pytest.fixture(scope="module")
def one_turn_url(seed_engine: Dossier, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The seed index answered by an engine that reads only the latest earlier turn."""
    settings = seed_engine.settings.model_copy(
        update={"data_dir": tmp_path_factory.mktemp("one-turn"), "chat_max_turns": 1}
    )
    # The engine reads the seed index (its settings' data dir); the app keeps conversations
    # in its own.
    engine_settings = seed_engine.settings.model_copy(update={"chat_max_turns": 1})
    engine = Dossier(engine_settings, store=seed_engine.store, embedder=seed_engine.embedder)
    with LiveServer(create_app(settings, engine)) as server:
        yield server.url


def test_a_long_conversation_is_read_from_its_latest_turns(one_turn_url: str) -> None:
    second = "Which security firm said Iran was the likely culprit in an August report?"
    third = "What else did they say?"
    with httpx.Client(base_url=one_turn_url, timeout=60) as c:
        cid = _ok(c.post("/v1/conversations"), 201)["id"]
        url = f"/v1/conversations/{cid}/messages"
        a1 = _ok(c.post(url, json={"content": FIRST}))["answer"]
        a2 = _ok(c.post(url, json={"content": second}))["answer"]
        got = _ok(c.post(url, json={"content": third}))["standalone_question"]

        def stateless(*history: str) -> str:
            roles = ["user", "assistant"] * len(history)
            messages = [{"role": r, "content": t} for r, t in zip(roles, history, strict=False)]
            body = {"messages": [*messages, {"role": "user", "content": third}]}
            answer: str = _ok(c.post("/v1/chat", json=body))["standalone_question"]
            return answer

        latest, first = stateless(second, a2), stateless(FIRST, a1)
    assert latest != first  # else this conversation could not tell the two apart
    assert got == latest, (got, first)


def _serve(data_dir: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOSSIER_")}
    env["DOSSIER_DATA_DIR"] = str(data_dir)
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(DOSSIER), "serve", "--port", str(port), "--workers", "2"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _each_worker(url: str, path: str) -> dict[str, Any]:
    """GET ``path`` on fresh connections until both workers have answered: body by worker."""
    seen: dict[str, Any] = {}
    deadline = time.monotonic() + 60
    while len(seen) < 2 and time.monotonic() < deadline:
        with httpx.Client(timeout=60) as c:
            r = c.get(url + path)
        seen.setdefault(r.headers["x-dossier-worker"], _ok(r))
    assert len(seen) == 2, f"only workers {sorted(seen)} answered"
    return seen


@pytest.mark.slow
def test_conversations_survive_a_restart(seed_engine: Dossier, tmp_path: Path) -> None:
    settings = seed_engine.settings
    # First server: in this process, on the seed index and its data dir.
    with (
        LiveServer(create_app(settings, seed_engine)) as first,
        httpx.Client(base_url=first.url, timeout=60) as c,
    ):
        cid = _ok(c.post("/v1/conversations"), 201)["id"]
        answer = _ok(c.post(f"/v1/conversations/{cid}/messages", json={"content": FIRST}))
    # Then a new server, two worker processes, on the same data dir.
    port, log = free_port(), tmp_path / "serve.log"
    proc = _serve(settings.data_dir, port, log)
    try:
        url = f"http://127.0.0.1:{port}"
        if not wait_for_http(f"{url}/healthz", proc, timeout=180):
            pytest.fail(f"dossier serve did not start:\n{log.read_text()}")
        for stored in _each_worker(url, f"/v1/conversations/{cid}").values():
            assert [m["content"] for m in stored["messages"]] == [FIRST, answer["answer"]]
            assert stored["messages"][1]["citations"] == answer["citations"]
        with httpx.Client(base_url=url, timeout=60) as c:
            follow_up = _ok(
                c.post(f"/v1/conversations/{cid}/messages", json={"content": FOLLOW_UP})
            )
        _assert_carries_first_topic(follow_up)

        # Turns posted at once, on fresh connections (so both workers write): each
        # question is stored with its own answer, none is lost.
        def post(i: int) -> str:
            with httpx.Client(base_url=url, timeout=120) as c:
                body = {"content": f"And what happened to the embassy? ({i})"}
                r = c.post(f"/v1/conversations/{cid}/messages", json=body)
            _ok(r)
            return r.headers["x-dossier-worker"]

        with ThreadPoolExecutor(4) as pool:
            workers = set(pool.map(post, range(4)))
        for stored in _each_worker(url, f"/v1/conversations/{cid}").values():
            msgs = stored["messages"]
            assert stored["message_count"] == len(msgs) == 12
            assert [m["role"] for m in msgs] == ["user", "assistant"] * 6
            asked = sorted(m["content"] for m in msgs[4::2])
            assert asked == [f"And what happened to the embassy? ({i})" for i in range(4)]
        print(f"concurrent turns were answered by workers {sorted(workers)}")
        with httpx.Client(base_url=url, timeout=60) as c:
            assert c.delete(f"/v1/conversations/{cid}").status_code == 204
    finally:
        proc.terminate()
        proc.wait(timeout=30)
