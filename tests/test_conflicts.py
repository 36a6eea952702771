"""When sources disagree (dossier/verify/conflicts.py): the rule, the engine, the API.

Two small reports of one race are ingested for real (Chroma on a temp dir, the hashing
embedder): in one collection they disagree on the winning time, in another they agree.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dossier.engine import Dossier
from dossier.models import Answer, AnswerSentence, Citation, Passage, ScoredPassage
from dossier.testing import LiveServer
from dossier.verify.conflicts import compare, flag_conflicts, load_rule, values
from ingest.pipeline import Ingestor
from service.app import create_app
from tests.conftest import SEED_QUESTIONS, make_settings

QUESTION = "What time did Kelly Holmes run to win the indoor 800m title in Birmingham?"
TITLE = "Holmes wins indoor 800m title"
BODY = (
    "Kelly Holmes won the indoor 800m title in Birmingham on Sunday. "
    "Holmes ran {time} to win the indoor 800m title in Birmingham, beating the field. "
    "She said the win was the best of her indoor career."
)
# (file, publisher, published, time)
DISAGREE = [
    ("wire.md", "Wire Service", "2005-02-21", "1:48.27"),
    ("times.md", "Athletics Times", "2005-02-20", "1:47.97"),
]
AGREE = [
    ("wire.md", "Wire Service", "2005-02-21", "1:47.97"),
    ("times.md", "Athletics Times", "2005-02-20", "1:47.97"),
]


def _write(folder: Path, articles: list[tuple[str, str, str, str]]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, publisher, published, time in articles:
        front = f"---\ntitle: {TITLE}\npublisher: {publisher}\npublished: '{published}'\n---\n"
        (folder / name).write_text(
            f"{front}{TITLE}\n\n{BODY.format(time=time)}\n", encoding="utf-8"
        )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Dossier:
    tmp = tmp_path_factory.mktemp("conflicts")
    settings = make_settings(tmp, embedder="hashing", default_collection="disagree")
    engine = Dossier(settings)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    for name, articles in (("disagree", DISAGREE), ("agree", AGREE)):
        _write(tmp / name, articles)
        ingestor.ingest(tmp / name, name)
    return engine


def _assert_citations_hold(engine: Dossier, answer: Answer) -> None:
    numbers = {c.number for c in answer.citations}
    assert {int(n) for n in re.findall(r"\[(\d+)\]", answer.text)} == numbers
    for c in answer.citations:
        doc = engine.document(c.doc_id, answer.collection).text
        assert doc[c.start : c.end] == c.quote
        assert c.quote in c.passage_text


# -- the rule -----------------------------------------------------------------------


def test_values_are_read_as_written_and_keyed_by_value() -> None:
    found = values("Profits jumped 76% to $1.13bn on 5 March 2005; it may rise 20 per cent.")
    assert [v.text for v in found] == ["76%", "$1.13bn", "5 March 2005", "20 per cent"]
    assert values("on March 5, 2005")[0].key == values("on 5 March 2005")[0].key
    assert values("$1.13 billion")[0].key == values("$1.13bn")[0].key


def test_a_changed_figure_disagrees_and_an_added_one_does_not() -> None:
    s = "TimeWarner profits jumped 76% to $1.13bn for the three months to December."
    c = compare(s, s.replace("76%", "67%"))
    assert (
        c.differs and [v.text for v in c.stated] == ["76%"] and [v.text for v in c.other] == ["67%"]
    )
    assert not compare(s, s).differs
    # A longer copy that adds a figure keeps every value of the sentence: no disagreement.
    assert not compare(s, s.replace("December", "December, from $639m")).differs


def test_the_shipped_rule_was_fitted_by_the_script() -> None:
    rule = load_rule()
    data = json.loads(
        (Path(__file__).resolve().parents[1] / "dossier/data/conflict_rule.json").read_text()
    )
    assert data["fitted_by"].startswith("python -m evals.conflicts")
    assert (rule.measure, rule.min_overlap) == (data["measure"], data["min_overlap"])


def _passage(doc: str, text: str, published: str | None) -> Passage:
    return Passage(f"{doc}-0", doc, text, 0, len(text), doc.upper(), f"{doc} news", None, published)


def test_disagreeing_sources_are_cited_earliest_first() -> None:
    s = "Holmes ran 1:47.97 to win the indoor 800m title in Birmingham, beating the field."
    own = _passage("a", s, "2005-02-20")
    later = _passage("b", s.replace("1:47.97", "1:48.27"), "2005-03-01")
    earlier = _passage("c", s.replace("1:47.97", "1:48.50"), "2005-02-01")
    undated = _passage("d", s.replace("1:47.97", "1:49.00"), None)
    answer = Answer(
        question="q",
        collection="c",
        text=f"{s} [1]",
        sentences=[AnswerSentence(s, (1,), True)],
        citations=[Citation.of(1, own, 0, len(s))],
        refused=False,
        answerer="test",
    )
    pool = [ScoredPassage(p, 1.0) for p in (own, later, undated, earlier)]
    flagged = flag_conflicts(answer, pool)
    [conflict] = flagged.conflicts
    assert (conflict.sentence, conflict.value, conflict.citation) == (0, "1:47.97", 1)
    assert [x.value for x in conflict.sources] == ["1:48.50", "1:48.27", "1:49.00"]
    assert [x.doc_id for x in conflict.sources] == ["c", "b", "d"]
    assert flagged.text.endswith(
        # Each dated source says how it stands to the answer's own (2005-02-20).
        "Sources disagree: [2] gives 1:48.50 (2005-02-01, older); "
        "[3] gives 1:48.27 (2005-03-01, newer); [4] gives 1:49.00."
    )
    assert [c.doc_id for c in flagged.citations] == ["a", "c", "b", "d"]
    assert [c.quote for c in flagged.citations[1:]] == [p.text for p in (earlier, later, undated)]
    # The original answer is not changed in place.
    assert answer.conflicts == [] and answer.text == f"{s} [1]"


# -- the engine and the API -------------------------------------------------------------


def test_sources_that_disagree_are_flagged_with_both_values(engine: Dossier) -> None:
    answer = engine.ask(QUESTION, "disagree")
    assert not answer.refused, answer.refusal_reason
    [conflict] = answer.conflicts
    assert {conflict.value, *(s.value for s in conflict.sources)} == {"1:47.97", "1:48.27"}
    [source] = conflict.sources
    note = f"Sources disagree: [{source.citation}] gives {source.value} ({source.published}, "
    assert note in answer.text
    # The wire (2005-02-21) reported a day after the Times (2005-02-20).
    assert note + ("newer)." if source.publisher == "Wire Service" else "older).") in answer.text
    cited = {c.number: c for c in answer.citations}[source.citation]
    assert (cited.doc_id, cited.start, cited.end, cited.quote) == (
        source.doc_id,
        source.start,
        source.end,
        source.quote,
    )
    assert source.value in source.quote and source.publisher in {"Wire Service", "Athletics Times"}
    _assert_citations_hold(engine, answer)


def test_copies_that_agree_are_not_flagged(engine: Dossier) -> None:
    answer = engine.ask(QUESTION, "agree")
    assert not answer.refused, answer.refusal_reason
    assert answer.conflicts == []
    assert "disagree" not in answer.text


def test_detection_can_be_turned_off(engine: Dossier) -> None:
    off = Dossier(
        engine.settings.model_copy(update={"conflict_detection": False}),
        store=engine.store,
        embedder=engine.embedder,
    )
    answer = off.ask(QUESTION, "disagree")
    assert answer.conflicts == [] and "disagree" not in answer.text


def test_a_targeted_search_finds_the_other_report_that_retrieval_left_out(
    engine: Dossier,
) -> None:
    # One passage retrieved for the question: only the search for the answer sentence
    # itself brings the other report.
    retrieved = engine.retrieve(QUESTION, "disagree", 1).passages
    assert len({sp.passage.doc_id for sp in retrieved}) == 1
    answer = engine.ask(QUESTION, "disagree", top_k=1)
    assert not answer.refused
    # The passage the search found is delivered with the answer, so its citation resolves.
    delivered = {sp.passage.passage_id for sp in answer.passages}
    assert {c.passage_id for c in answer.citations} <= delivered and len(delivered) == 2
    [conflict] = answer.conflicts
    assert {conflict.value, *(x.value for x in conflict.sources)} == {"1:47.97", "1:48.27"}
    _assert_citations_hold(engine, answer)
    without = Dossier(
        engine.settings.model_copy(update={"conflict_search_k": 0}),
        store=engine.store,
        embedder=engine.embedder,
    )
    assert without.ask(QUESTION, "disagree", top_k=1).conflicts == []


def test_the_seed_collection_has_no_conflicts(seed_engine: Dossier) -> None:
    # One article: no other document to disagree with.
    for question in SEED_QUESTIONS:
        assert seed_engine.ask(question).conflicts == []


@pytest.fixture(scope="module")
def api(engine: Dossier) -> Iterator[httpx.Client]:
    with (
        LiveServer(create_app(engine.settings, engine)) as server,
        httpx.Client(base_url=server.url, timeout=30) as client,
    ):
        yield client


def test_api_returns_conflicts(api: httpx.Client) -> None:
    r = api.post("/v1/ask", json={"question": QUESTION, "collection": "disagree"})
    assert r.status_code == 200, r.text
    body = r.json()
    [conflict] = body["conflicts"]
    [source] = conflict["sources"]
    assert {conflict["value"], source["value"]} == {"1:47.97", "1:48.27"}
    assert source["citation"] in {c["number"] for c in body["citations"]}
    agree = api.post("/v1/ask", json={"question": QUESTION, "collection": "agree"}).json()
    assert agree["conflicts"] == []


def test_streamed_answer_and_chat_completions_carry_conflicts(api: httpx.Client) -> None:
    with api.stream(
        "POST", "/v1/ask", json={"question": QUESTION, "collection": "disagree", "stream": True}
    ) as r:
        assert r.status_code == 200
        text = r.read().decode()
    events = [block.split("\n", 1) for block in text.strip().split("\n\n")]
    final = json.loads(events[-2][1].removeprefix("data: "))
    assert len(final["conflicts"]) == 1 and "Sources disagree" in final["answer"]
    body = {"model": "disagree", "messages": [{"role": "user", "content": QUESTION}]}
    r = api.post("/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    done = r.json()
    assert len(done["conflicts"]) == 1
    assert "Sources disagree" in done["choices"][0]["message"]["content"]
