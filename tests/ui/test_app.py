"""Page logic through Streamlit's AppTest, against a real API on loopback."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.ui.conftest import FOLLOW_UP, AppFactory, carries_topic
from ui.client import Answer, ChatMessage, DossierClient

QUESTION = "Why did Albania expel Iranian diplomats?"
THIRD = "When did that happen?"
OFF_TOPIC = "What is the capital of France?"


def ask(at: AppTest, question: str) -> AppTest:
    return at.chat_input[0].set_value(question).run()


def last_answer(at: AppTest) -> Answer:
    answer: Answer = at.session_state["messages"][-1]["answer"]
    return answer


def markdown_with(at: AppTest, needle: str) -> list[str]:
    return [m.value for m in at.markdown if needle in m.value]


def test_seed_question_is_answered_with_chips_cards_and_feedback(app: AppFactory) -> None:
    at = ask(app().run(), QUESTION)
    assert not at.exception and not at.error
    answer = last_answer(at)
    assert not answer.refused and answer.citations
    (html,) = markdown_with(at, 'class="dossier-answer"')
    for c in answer.citations:
        assert f'data-cite="{c.number}"' in html
        assert at.button(key=f"open-1-{c.number}").label == f"Open [{c.number}] in the article"
    cards = markdown_with(at, 'class="dossier-card"')
    assert cards and all('<mark class="cited">' in card for card in cards)
    assert len(at.feedback) == 1
    assert len(at.chat_message) == 2


def searched(at: AppTest) -> list[str]:
    return [c.value for c in at.caption if c.value.startswith("Searched: ")]


def test_a_three_turn_conversation_carries_the_history(app: AppFactory, live_api: str) -> None:
    at = ask(app().run(), QUESTION)
    assert not at.exception and not at.error
    assert not searched(at)  # a first question is searched as typed: no small print
    at = ask(at, FOLLOW_UP)
    assert not at.exception and not at.error
    assert len(at.chat_message) == 4
    # The second request carried the first turn: the follow-up was searched with its topic.
    (shown,) = searched(at)
    standalone = last_answer(at).standalone_question
    assert shown == f"Searched: {standalone}" and carries_topic(standalone), standalone
    with DossierClient(live_api) as c:
        alone = c.chat([ChatMessage(role="user", content=FOLLOW_UP)])
    assert alone.standalone_question == FOLLOW_UP  # without the history, nothing is carried
    # Each answer keeps its own cards, chips and feedback.
    assert len(markdown_with(at, 'class="dossier-answer"')) == 2 and len(at.feedback) == 2
    at = ask(at, THIRD)
    assert not at.exception and len(at.chat_message) == 6
    assert len(at.session_state["messages"]) == 6 and last_answer(at).answer
    # A new conversation forgets the turns: the follow-up alone is searched as typed.
    at.button(key="new-conversation").click().run()
    assert not at.chat_message and at.session_state["messages"] == []
    at = ask(at, FOLLOW_UP)
    assert len(at.chat_message) == 2 and not searched(at)


def test_a_degraded_answer_says_the_model_failed(app: AppFactory, degraded_api: str) -> None:
    at = ask(app(degraded_api).run(), QUESTION)
    assert not at.exception and not at.error
    answer = last_answer(at)
    assert answer.degraded and "HTTP 500" in (answer.degraded_reason or "")
    (warning,) = [w.value for w in at.warning]
    assert warning.startswith("The configured model failed (") and "HTTP 500" in warning
    assert "extractive fallback" in warning
    (html,) = markdown_with(at, 'class="dossier-answer"')
    assert 'data-degraded="true"' in html
    # The fallback is still a grounded answer: its citations are shown as usual.
    assert answer.citations and markdown_with(at, 'class="dossier-card"')


def test_an_answer_without_fallback_is_not_marked_degraded(app: AppFactory) -> None:
    at = ask(app().run(), QUESTION)
    assert not last_answer(at).degraded and not at.warning
    assert "data-degraded" not in markdown_with(at, 'class="dossier-answer"')[0]


def test_opening_a_citation_shows_the_article_with_the_cited_span(app: AppFactory) -> None:
    at = ask(app().run(), QUESTION)
    cited = last_answer(at).citations[-1]
    at.button(key=f"open-1-{cited.number}").click().run()
    assert not at.exception
    assert at.title[0].value == cited.title
    (article,) = [h.value for h in at.html if 'class="dossier-article"' in h.value]
    assert f'<mark class="cited" id="cited">{cited.quote}<sup>[{cited.number}]</sup>' in article
    assert "box.scrollTop" in article
    # Back to the chat: the history is still there.
    at.button(key="back").click().run()
    assert len(at.chat_message) == 2 and at.title[0].value == "Ask Dossier"


def test_source_view_opens_from_a_chip_link(app: AppFactory, live_api: str) -> None:
    with DossierClient(live_api) as c:
        cited = c.ask(QUESTION).citations[0]
    at = app()
    for key, value in {
        "view": "source",
        "collection": "albania-iran",
        "doc": cited.doc_id,
        "start": str(cited.start),
        "end": str(cited.end),
        "n": "1",
    }.items():
        at.query_params[key] = value
    at.run()
    (article,) = [h.value for h in at.html if 'class="dossier-article"' in h.value]
    assert f'id="cited">{cited.quote}<sup>[1]</sup></mark>' in article


def test_refusal_offers_related_passages_not_an_answer(app: AppFactory) -> None:
    at = ask(app().run(), OFF_TOPIC)
    assert last_answer(at).refused
    assert markdown_with(at, 'data-refused="true"')
    assert any(c.value == "Related, but not an answer:" for c in at.caption)
    assert 1 <= len(markdown_with(at, "dossier-card related")) <= 3
    assert not [b for b in at.button if b.key and b.key.startswith("open-")]


def test_feedback_is_stored_through_the_api(app: AppFactory, live_api: str) -> None:
    at = ask(app().run(), QUESTION)
    at.feedback[0].set_value(1).run()
    at.text_input(key="fb-comment-1").input("clear and cited")
    at.button(key="fb-send-1").click().run()
    assert at.success and "recorded" in at.success[0].value
    with DossierClient(live_api) as c:
        stored = c.feedback()[0]
    assert (stored.rating, stored.comment, stored.question) == ("up", "clear and cited", QUESTION)


def test_unreachable_api_is_explained_on_load_and_on_ask(
    app: AppFactory, closed_port_url: str
) -> None:
    at = app(closed_port_url).run()
    assert not at.exception
    assert "Cannot reach the Dossier API" in at.error[0].value
    at = ask(at, QUESTION)
    assert "make run" in at.error[-1].value
    assert at.session_state["messages"][-1]["kind"] == "unreachable"


def test_unknown_collection_is_named_with_the_known_ones(app: AppFactory) -> None:
    at = app()
    at.query_params["collection"] = "no-such-collection"
    at.run()
    assert "Unknown collection 'no-such-collection'" in at.warning[0].value
    assert "albania-iran" in at.warning[0].value


def test_source_in_an_unknown_collection_shows_the_api_message(app: AppFactory) -> None:
    at = app()
    for key, value in {"view": "source", "collection": "gone", "doc": "x", "start": "0"}.items():
        at.query_params[key] = value
    at.query_params["end"] = "5"
    at.run()
    assert not at.exception
    assert "Unknown collection 'gone'" in at.error[0].value


def test_slow_answer_ends_in_a_timeout_message(app: AppFactory, slow_api: str) -> None:
    at = ask(app(slow_api, DOSSIER_UI_TIMEOUT_S="0.3").run(), QUESTION)
    assert not at.exception
    assert "did not answer within 0.3 s" in at.warning[0].value
    assert at.session_state["messages"][-1]["kind"] == "timeout"


def test_corpus_page_lists_collections_documents_and_search(app: AppFactory) -> None:
    at = app().run()
    at.radio(key="page").set_value("Corpus").run()
    assert at.title[0].value == "Corpus"
    collections, documents = at.dataframe[0].value, at.dataframe[1].value
    assert list(collections["name"]) == ["albania-iran"]
    assert list(documents["chunks"]) == [int(collections["chunks"][0])]
    at.text_input(key="doc-filter").input("no such words").run()
    assert len(at.dataframe[1].value) == 0
    at.text_input(key="doc-filter").input("").run()
    at.text_input(key="search-query").input("diplomats expelled")
    at.number_input(key="search-k").set_value(3)
    at.button(key="search-submit").click().run()
    results = at.dataframe[2].value
    assert list(results["rank"]) == [1, 2, 3]
    assert list(results["score"]) == sorted(results["score"], reverse=True)


def test_feedback_page_lists_what_was_sent(app: AppFactory, live_api: str) -> None:
    with DossierClient(live_api) as c:
        c.send_feedback(c.ask(QUESTION), "down", "needs the date")
    at = app().run()
    at.radio(key="page").set_value("Feedback").run()
    assert "needs the date" in list(at.dataframe[0].value["comment"])


def test_the_date_filter_keeps_answers_to_sources_of_those_dates(app: AppFactory) -> None:
    """The seed article is dated 2022-09-07: a range around it answers, one before refuses."""
    import datetime as dt

    at = app().run()
    at.checkbox(key="date-filter-on").check().run()
    at.date_input(key="date-after").set_value(dt.date(2022, 9, 1)).run()
    at.date_input(key="date-before").set_value(dt.date(2022, 9, 30)).run()
    at = ask(at, QUESTION)
    answer = last_answer(at)
    assert not answer.refused and all(c.published == "2022-09-07" for c in answer.citations)

    at.date_input(key="date-after").set_value(dt.date(2021, 1, 1)).run()
    at.date_input(key="date-before").set_value(dt.date(2021, 12, 31)).run()
    at.button(key="new-conversation").click().run()
    at = ask(at, QUESTION)
    refused = last_answer(at)
    assert refused.refused and "filters" in (refused.refusal_reason or "")
