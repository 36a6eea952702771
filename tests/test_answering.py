"""The default extractive answerer over the real seed index."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from dossier.answer.base import AnswerContext
from dossier.answer.extractive import ExtractiveAnswerer
from dossier.answer.model import DEFAULT_PATH, load_answer_model
from dossier.answer.neural import joined
from dossier.answer.registry import build_answerer
from dossier.answer.selection import candidates, featurize
from dossier.engine import Dossier
from dossier.errors import ConfigurationError, InvalidInput, ModelNotInstalled
from dossier.settings import Settings
from dossier.text import sentence_spans


@pytest.mark.xfail(
    strict=True,
    reason="issues #8, #22: the linear and the neural model both lead with 'Iran's ambassador "
    "and three other diplomats have been expelled in recent years...' (P(answerable) 0.98), "
    "background rather than the news",
)
def test_seed_question_is_answered_from_the_lead(seed_engine: Dossier) -> None:
    answer = seed_engine.ask("Why did Albania expel Iranian diplomats?")
    assert "cyberattack" in answer.text


def test_seed_question_cites_exact_sentences(seed_engine: Dossier) -> None:
    answer = seed_engine.ask("Why did Albania expel Iranian diplomats?")
    assert not answer.refused
    # What it says is test_seed_question_is_answered_from_the_lead's concern; here, how.
    assert 1 <= len(answer.sentences) <= 3
    doc = seed_engine.document(answer.citations[0].doc_id).text
    for sentence, citation in zip(answer.sentences, answer.citations, strict=True):
        assert sentence.citations == (citation.number,)
        # The cited span is exactly the quote, and it sits in the cited passage.
        assert doc[citation.start : citation.end] == citation.quote
        assert citation.quote in citation.passage_text
        # The sentence is the quote, or a sentence that opens with a pronoun joined to the
        # one before it (the quote then holds both, verbatim).
        parts = [citation.quote[s:e] for s, e in sentence_spans(citation.quote)]
        assert sentence.text == citation.quote or (
            len(parts) == 2 and sentence.text == joined(*parts)
        )
    assert re.findall(r"\[(\d+)\]", answer.text) == [str(c.number) for c in answer.citations]


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("Which security firm blamed Iran in an August report?", "Mandiant"),
        ("When did Albania agree to shelter members of the opposition group?", "2014"),
        # A two-word question: little evidence for the answerability model.
        ("Who is Toby Lues?", "Darktrace"),
        # A known miss of the learned model (issue #8 stays open for it): the reason for
        # the cancellation sits in a sentence that shares no word with "cancel".
        pytest.param(
            "Why did the MEK group cancel its conference in Albania?",
            "terrorist attacks",
            marks=pytest.mark.xfail(reason="the model prefers sentences about the MEK itself"),
        ),
    ],
)
def test_answerable_questions_hold_the_fact(seed_engine: Dossier, question: str, fact: str) -> None:
    answer = seed_engine.ask(question)
    assert not answer.refused, answer.refusal_reason
    assert fact in answer.text


@pytest.mark.parametrize(
    "question",
    [
        "What is the capital of France?",
        "How much ransom did the hackers demand?",
        "Who won the 2022 football World Cup?",
        "Who is the president of Albania?",
    ],
)
def test_unanswerable_questions_are_refused(seed_engine: Dossier, question: str) -> None:
    answer = seed_engine.ask(question)
    assert answer.refused, answer.text
    assert answer.citations == [] and answer.refusal_reason
    assert answer.passages, "related passages are still returned for a UI to offer"


def test_no_passages_means_refusal() -> None:
    answer = ExtractiveAnswerer().answer("Why?", [], AnswerContext("x", idf=lambda t: 1.0))
    assert answer.refused and answer.refusal_reason == "no passage matched"


def test_question_validation(seed_engine: Dossier) -> None:
    with pytest.raises(InvalidInput, match="empty"):
        seed_engine.ask("  ")
    with pytest.raises(InvalidInput, match="between 1 and"):
        seed_engine.ask("Why?", top_k=0)


def test_answers_carry_a_probability_and_lead_with_the_best_sentence(
    seed_engine: Dossier,
) -> None:
    question = "Why did Albania expel Iranian diplomats?"
    answer = seed_engine.ask(question)
    assert answer.answerable_probability is not None
    model = load_answer_model()
    assert answer.answerable_probability >= model.threshold
    # Best first: the first sentence is the candidate the model ranks highest.
    r = seed_engine.retrieve(question)
    cands = candidates(r.passages)
    scored = featurize(question, r.context.question_vector, cands, r.context.idf, r.context.embed)
    _, probabilities = model.sentence_probabilities(scored.X)
    best = cands[int(probabilities.argmax())]
    assert answer.citations[0].start == best.start and answer.sentences[0].text == best.text
    refused = seed_engine.ask("What is the capital of France?")
    assert refused.refused and refused.answerable_probability is not None
    assert refused.answerable_probability < model.threshold
    assert "P(answerable)" in (refused.refusal_reason or "")


def test_a_damaged_model_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / DEFAULT_PATH.name
    copy.write_bytes(DEFAULT_PATH.read_bytes().replace(b'"threshold"', b'"threshold" ', 1))
    (tmp_path / DEFAULT_PATH.with_suffix(".sha256").name).write_bytes(
        DEFAULT_PATH.with_suffix(".sha256").read_bytes()
    )
    with pytest.raises(ModelNotInstalled, match="sha256"):
        load_answer_model(copy)
    with pytest.raises(ModelNotInstalled, match="missing"):
        load_answer_model(tmp_path / "nothing.json")


def test_answerer_is_chosen_by_settings() -> None:
    assert build_answerer(Settings(_env_file=None)).name == "extractive"  # type: ignore[call-arg]
    for name in ("rules", "cosine"):  # kept for comparison, never the default
        assert build_answerer(Settings(_env_file=None, answerer=name)).name == name  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="extractive"):
        build_answerer(Settings(_env_file=None, answerer="nope"))  # type: ignore[call-arg]


def test_a_collection_can_have_its_own_refusal_threshold(seed_engine: Dossier) -> None:
    question = "Why did Albania expel Iranian diplomats?"
    model = load_answer_model()
    assert model.calibrations["news"] == model.threshold  # the default is the news one
    assert 0.0 < model.calibrations["squad2"] < 1.0
    answerer = ExtractiveAnswerer(model)
    original = seed_engine.settings
    try:
        for own, refused in ((1.0, True), (0.0, False)):
            seed_engine.settings = original.model_copy(
                update={"answerable_thresholds": {"albania-iran": own}}
            )
            r = seed_engine.retrieve(question, "albania-iran")
            assert r.context.answerable_threshold == own
            answer = answerer.answer(question, r.passages, r.context)
            assert answer.refused is refused
            assert answerer.answerability(question, r.passages, r.context)[1] == own
        # A calibration named by the model.
        seed_engine.settings = original.model_copy(
            update={"answerable_thresholds": {"albania-iran": "squad2"}}
        )
        r = seed_engine.retrieve(question, "albania-iran")
        assert answerer.threshold_for(r.context) == model.calibrations["squad2"]
        seed_engine.settings = original.model_copy(
            update={"answerable_thresholds": {"albania-iran": "nonsense"}}
        )
        r = seed_engine.retrieve(question, "albania-iran")
        with pytest.raises(ConfigurationError, match="Unknown answerability calibration"):
            answerer.answer(question, r.passages, r.context)
    finally:
        seed_engine.settings = original


def test_a_conversations_later_turns_use_the_chat_calibration(seed_engine: Dossier) -> None:
    from dossier.chat.condense import Message

    model = load_answer_model()
    chat = model.calibrations["chat"]
    assert 0.0 < chat <= model.threshold  # refuses less than news, never more
    answerer = ExtractiveAnswerer(model)
    first = [Message("user", "Why did Albania expel Iranian diplomats?")]
    later = [*first, Message("assistant", "Over a cyberattack. [1]"), Message("user", "When?")]
    r = seed_engine.chat_retrieve(first, "albania-iran")
    assert not r.context.in_conversation
    assert answerer.threshold_for(r.context) == model.threshold
    r = seed_engine.chat_retrieve(later, "albania-iran")
    assert r.context.in_conversation
    assert answerer.threshold_for(r.context) == chat
    # A collection's own threshold, or one set for all collections, still wins.
    assert answerer.threshold_for(replace(r.context, answerable_threshold=0.9)) == 0.9
    assert ExtractiveAnswerer(model, threshold=0.8).threshold_for(r.context) == 0.8


def test_thresholds_per_collection_are_validated() -> None:
    with pytest.raises(ValueError, match="less than or equal to 1"):
        Settings(answerable_thresholds={"x": 1.5})
    assert Settings(answerable_thresholds={"x": "squad2"}).answerable_thresholds == {"x": "squad2"}


def test_an_answer_must_hold_what_is_asked_beyond_the_question() -> None:
    from dossier.answer.selection import holds_novel

    q = "How much did Microsoft pay to buy Sybari Software in 2005?"
    assert holds_novel(q, "Microsoft paid $100m (£53m) for Sybari.") == [True]
    # Numbers, but only the question's own year, and no price.
    assert holds_novel(q, "In 2005 Microsoft agreed to buy Sybari, its second deal.") == [False]
    who = "Which minister resigned after the cyberattack on Albania?"
    assert holds_novel(who, "Interior Minister Bledar Cuci resigned on Monday.") == [True]
    assert holds_novel(who, "The cyberattack on Albania was widely condemned.") == [False]
    assert holds_novel("Why did Albania expel Iranian diplomats?", "Anything.") == []


@pytest.mark.parametrize(
    ("question", "slot", "fills", "misses"),
    [
        (
            "How many Citigroup traders are under investigation over the 2 August bond deal?",
            "count",
            "Six Citigroup traders are being investigated by German prosecutors.",
            # Numbers, but the question's own date and amounts of money, not of traders.
            "The deal saw the sale of 11bn euros of government bonds on 2 August.",
        ),
        (
            "What interest rate will Turkey pay on the new $10bn IMF loan?",
            "percent",
            "The new loan carries an interest rate of 4.5%.",
            "Turkey's current $18.6bn loan agreement with the IMF expires in February.",
        ),
        (
            "What was Hayley Yelling's winning time in the race?",
            "duration",
            "Yelling won in 19 minutes 30 seconds.",
            "Hayley Yelling completed a hat-trick of wins on Sunday.",
        ),
        (
            "Which French magazine did Nicolas Anelka talk to?",
            "entity",
            "Anelka told France Football that he missed the Champions League.",
            # The sentence-opening word is no name; the question's names are not an answer.
            "Striker Nicolas Anelka reportedly wants to leave.",
        ),
    ],
)
def test_an_answer_must_fill_the_slot_the_question_asks_for(
    question: str, slot: str, fills: str, misses: str
) -> None:
    from dossier.answer.selection import asked_slot, holds_slot, slot_novel

    asked = asked_slot(question)
    assert asked is not None and asked[0] == slot
    assert holds_slot(question, fills) is True
    assert holds_slot(question, misses) is False
    assert slot_novel(question, [fills, misses]).tolist() == [1.0, 0.0]


def test_a_question_without_a_slot_has_no_slot_feature() -> None:
    from dossier.answer.selection import asked_slot, holds_slot, slot_novel

    q = "Why did Albania expel Iranian diplomats?"
    assert asked_slot(q) is None
    assert holds_slot(q, "Albania expelled 12 Iranian diplomats over a cyberattack.") is None
    assert slot_novel(q, ["Albania expelled them."]).tolist() == [0.0]
