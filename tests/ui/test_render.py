"""HTML rendering of answers, cards and articles."""

from __future__ import annotations

from ui import render
from ui.client import Answer, AnswerSentence, Citation, DocumentDetail, Page, Passage

TEXT = "Intro line.\n\nAlbania cut ties with Iran. It blamed a cyberattack <script>."


def _citation(n: int, quote: str) -> Citation:
    start = TEXT.index(quote)
    return Citation(
        number=n,
        doc_id="d1",
        passage_id="d1-0",
        title="Ties cut",
        publisher="Wire",
        url=None,
        published="2022-09-07",
        passage_text=TEXT,
        quote=quote,
        start=start,
        end=start + len(quote),
    )


def _answer(supported: bool | None = True) -> Answer:
    c1, c2 = _citation(1, "Albania cut ties with Iran."), _citation(2, "It blamed a cyberattack")
    return Answer(
        question="Why?",
        collection="seed",
        answer=f"{c1.quote} [1] {c2.quote} [2]",
        refused=False,
        sentences=[
            AnswerSentence(text=c1.quote, citations=[1], supported=True),
            AnswerSentence(text=c2.quote + " <script>", citations=[2], supported=supported),
        ],
        citations=[c1, c2],
    )


def test_answer_has_one_linked_chip_per_marker_and_escapes_text() -> None:
    html = render.answer_html(_answer())
    assert html.count('class="cite-chip"') == 2
    assert 'data-cite="1"' in html and 'data-cite="2"' in html
    assert "doc=d1" in html and "start=13" in html and "end=40" in html
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "\n\n" not in html  # a blank line would end Streamlit's raw-HTML block


def test_unsupported_sentence_is_marked() -> None:
    assert 'data-supported="false"' in render.answer_html(_answer(supported=False))
    assert "unsupported" in render.answer_html(_answer(supported=False))
    assert "unsupported-tag" not in render.answer_html(_answer(supported=None))


def test_refusal_is_shown_as_such() -> None:
    refused = Answer(
        question="q", collection="seed", answer="The corpus does not say.", refused=True
    )
    html = render.answer_html(refused)
    assert 'data-refused="true"' in html and "No answer in this collection" in html


def test_one_card_per_passage_with_each_cited_sentence_marked() -> None:
    ((card, cits),) = render.cited_cards(_answer())
    assert [c.number for c in cits] == [1, 2]
    assert '<mark class="cited">Albania cut ties with Iran.<sup>[1]</sup></mark>' in card
    assert "Wire · 2022-09-07" in card


def test_article_highlights_exactly_the_span() -> None:
    doc = DocumentDetail(doc_id="d1", collection="seed", title="t", text=TEXT)
    c = _citation(1, "Albania cut ties with Iran.")
    html = render.article_html(doc, c.start, c.end, "[1]")
    assert f'<mark class="cited" id="cited">{c.quote}<sup>[1]</sup></mark>' in html
    assert html.count("<mark") == 1


def test_a_pdf_source_shows_the_cited_page_only() -> None:
    text = "Page one says little.\n\nPage two: Albania cut ties with Iran.\n\nPage three."
    one, two = text.index("Page one"), text.index("Page two")
    three = text.index("Page three")
    pages = [Page(page=1, start=one, end=two - 2), Page(page=2, start=two, end=three - 2)]
    pages.append(Page(page=3, start=three, end=len(text)))
    doc = DocumentDetail(doc_id="d1", collection="seed", title="t", text=text, pages=pages)
    quote = "Albania cut ties with Iran."
    start = text.index(quote)
    html = render.article_html(doc, start, start + len(quote), "[1]")
    assert "Page 2 of 3" in html
    assert f'<mark class="cited" id="cited">{quote}<sup>[1]</sup></mark>' in html
    assert "Page one" not in html and "Page three" not in html


def test_related_card_shows_score() -> None:
    p = Passage(passage_id="p", doc_id="d", title="T", text="x", start=0, end=1, score=0.4321)
    assert "score 0.43" in render.related_card_html(p)


def test_card_shows_publisher_date_and_a_link_to_the_original() -> None:
    answer = _answer()
    linked = answer.model_copy(
        update={
            "citations": [
                c.model_copy(update={"url": "https://wire.example/ties"}) for c in answer.citations
            ]
        }
    )
    ((card, _),) = render.cited_cards(linked)
    assert "Wire · 2022-09-07 · " in card
    assert 'href="https://wire.example/ties"' in card and ">original</a>" in card
    # Only web links: a javascript: URL from an article's front matter is not linked.
    assert ">original<" not in render.source_meta("Wire", None, "javascript:alert(1)")
    assert render.source_meta(None, None, None) == "unknown source"


def test_a_conflict_shows_both_quotes_side_by_side_each_linked_and_the_newer_marked() -> None:
    from ui.client import Conflict, DisagreeingSource

    own = _citation(1, "Albania cut ties with Iran.")
    other = own.model_copy(
        update={"number": 2, "doc_id": "d2", "quote": "Albania cut ties with <Iran>."}
    )
    answer = Answer(
        question="When?",
        collection="seed",
        answer="Albania cut ties with Iran. [1]",
        refused=False,
        sentences=[AnswerSentence(text=own.quote, citations=[1])],
        citations=[own, other.model_copy(update={"published": "2022-09-09"})],
        conflicts=[
            Conflict(
                sentence=0,
                value="24 hours",
                citation=1,
                sources=[
                    DisagreeingSource(
                        value="48 hours",
                        citation=2,
                        quote=other.quote,
                        doc_id="d2",
                        passage_id="d2-0",
                        title="Other report",
                        publisher="Balkan Wire",
                        published="2022-09-09",
                        start=0,
                        end=len(other.quote),
                    )
                ],
            )
        ],
    )
    html = render.conflict_html(answer, answer.conflicts[0])
    assert "Sources disagree" in html and html.count('class="side"') == 2
    assert html.index("24 hours") < html.index("48 hours")
    assert "doc=d1" in html and "doc=d2" in html  # each side opens its own article
    assert "&lt;Iran&gt;" in html and "<Iran>" not in html
    # Only the later report is marked newer.
    assert html.count("newer") == 1 and html.index("newer") > html.index("Balkan Wire")
