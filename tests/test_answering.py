"""The default extractive answerer over the real seed index."""

from __future__ import annotations

import re

import pytest

from dossier.answering import AnswerContext, ExtractiveAnswerer
from dossier.engine import Dossier, build_answerer
from dossier.errors import ConfigurationError, InvalidInput
from dossier.settings import Settings


def test_seed_question_is_answered_from_the_lead(seed_engine: Dossier) -> None:
    answer = seed_engine.ask("Why did Albania expel Iranian diplomats?")
    assert not answer.refused
    assert "ordered all Iranian diplomats and staff" in answer.text
    assert "cyberattack" in answer.text
    assert 1 <= len(answer.sentences) <= 3
    doc = seed_engine.document(answer.citations[0].doc_id).text
    for sentence, citation in zip(answer.sentences, answer.citations, strict=True):
        assert sentence.citations == (citation.number,)
        # The cited span is exactly the sentence, and it sits in the cited passage.
        assert doc[citation.start : citation.end] == sentence.text == citation.quote
        assert citation.quote in citation.passage_text
    assert re.findall(r"\[(\d+)\]", answer.text) == [str(c.number) for c in answer.citations]


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("Which security firm blamed Iran in an August report?", "Mandiant"),
        ("When did Albania agree to shelter members of the opposition group?", "2014"),
        ("Who is Toby Lues?", "Darktrace"),
        ("Why did the MEK group cancel its conference in Albania?", "terrorist attacks"),
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


def test_answerer_is_chosen_by_settings() -> None:
    assert build_answerer(Settings(_env_file=None)).name == "extractive"  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match="extractive"):
        build_answerer(Settings(_env_file=None, answerer="nope"))  # type: ignore[call-arg]
