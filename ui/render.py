"""HTML fragments for answers, citation cards and articles; pure functions, no Streamlit.

Everything from the corpus or the API is escaped here, once, so no article text can
inject markup into the page. Fragments never contain blank lines: Streamlit's markdown
ends a raw-HTML block at the first blank line and would treat the rest as markdown.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Iterable
from urllib.parse import urlencode

from ui.client import (
    Answer,
    AnswerSentence,
    Citation,
    Conflict,
    DocumentDetail,
    Page,
    Passage,
)

CSS = """
<style>
.dossier-answer { line-height: 1.6; }
.dossier-answer .sent[data-supported="false"] {
  text-decoration: underline wavy #c0392b; text-underline-offset: 3px; }
.dossier-answer .unsupported-tag { font-size: .7em; color: #c0392b; margin-left: .25em; }
a.cite-chip { display: inline-block; padding: 0 .45em; margin: 0 .1em; border-radius: 1em;
  background: #e8eefc; color: #1f4fbf !important; font-size: .8em; font-weight: 600;
  text-decoration: none !important; vertical-align: .1em; }
a.cite-chip:hover { background: #1f4fbf; color: #fff !important; }
.dossier-refused { border-left: 4px solid #e0a800; padding: .2em .8em; background: #fff8e1; }
.dossier-card { border: 1px solid #d9dde3; border-radius: .5em; padding: .6em .8em;
  margin: .3em 0; font-size: .9em; }
.dossier-card .meta { color: #5f6b7a; font-size: .85em; margin-bottom: .3em; }
.dossier-card .text { white-space: pre-wrap; }
.dossier-card.related .text { max-height: 9em; overflow-y: auto; }
mark.cited { background: #ffe58a; padding: 0 .1em; border-radius: .2em; }
mark.cited sup { color: #1f4fbf; font-weight: 600; }
.dossier-article { position: relative; white-space: pre-wrap; line-height: 1.65; max-height: 65vh;
  overflow-y: auto; border: 1px solid #d9dde3; border-radius: .5em; padding: 1em; }
.dossier-conflict { border-left: 4px solid #c0392b; background: #fdf1ef; padding: .4em .8em;
  margin: .4em 0; border-radius: .3em; }
.dossier-conflict .mark { color: #c0392b; font-weight: 700; }
.dossier-conflict .sides { display: flex; gap: .8em; margin-top: .4em; }
.dossier-conflict .side { flex: 1; border: 1px solid #e6c8c3; border-radius: .4em;
  padding: .4em .6em; background: #fff; font-size: .9em; }
.dossier-conflict .side .value { font-weight: 700; }
.dossier-conflict .side .meta { color: #5f6b7a; font-size: .85em; }
</style>
"""


def esc(text: str) -> str:
    # Also escape "$": Streamlit markdown would otherwise typeset $...$ as LaTeX.
    return html.escape(text).replace("$", "&#36;")


def md_text(text: str) -> str:
    """Plain text for Streamlit markdown (streamed answers): "$" would start LaTeX."""
    return text.replace("$", "\\$")


def _flat(text: str) -> str:
    """Escaped text with newlines as <br>, so no blank line ends the HTML block."""
    return esc(text).replace("\n", "<br>")


def meta_line(publisher: str | None, published: str | None, extra: str = "") -> str:
    parts = [p for p in (publisher, published) if p]
    line = " · ".join(esc(p) for p in parts) or "unknown source"
    return line + extra


def source_meta(
    publisher: str | None, published: str | None, url: str | None, extra: str = ""
) -> str:
    """Publisher · date · a link to the original when the source has one: what a reader
    needs to judge a citation, on one short line."""
    link = (
        f' · <a class="original" href="{esc(url)}" target="_blank" rel="noopener">original</a>'
        if url and url.startswith(("http://", "https://"))
        else ""
    )
    return meta_line(publisher, published, extra) + link


def source_query(citation: Citation, collection: str) -> dict[str, str]:
    """Query parameters that open the source view of one citation (see ``views.source``)."""
    return {
        "view": "source",
        "collection": collection,
        "doc": citation.doc_id,
        "start": str(citation.start),
        "end": str(citation.end),
        "n": str(citation.number),
    }


def source_href(citation: Citation, collection: str) -> str:
    return "?" + urlencode(source_query(citation, collection))


def sentence_html(
    sentence: AnswerSentence, by_number: dict[int, Citation], href: Callable[[Citation], str]
) -> str:
    """One sentence with its chips. ``supported`` is False only from a checking answerer (an
    LLM); it is drawn so that streamed, per-sentence rendering needs nothing new."""
    chips = []
    for n in sentence.citations:
        cit = by_number.get(n)
        if cit is None:  # a marker without a citation: show it, but it cannot link anywhere
            chips.append(f'<span class="cite-chip">[{n}]</span>')
            continue
        title = esc(f"{cit.title}: {cit.quote}")
        chips.append(
            f'<a class="cite-chip" data-cite="{n}" href="{esc(href(cit))}" target="_blank"'
            f' rel="noopener" title="{title}">[{n}]</a>'
        )
    supported = {True: "true", False: "false", None: "unknown"}[sentence.supported]
    tag = (
        '<span class="unsupported-tag" title="No cited passage supports this sentence">'
        "unsupported</span>"
        if sentence.supported is False
        else ""
    )
    return (
        f'<span class="sent" data-supported="{supported}">{esc(sentence.text)}</span>'
        f"{tag}{''.join(chips)}"
    )


def answer_html(answer: Answer, href: Callable[[Citation], str] | None = None) -> str:
    if answer.refused:
        reason = f" <small>({esc(answer.refusal_reason)})</small>" if answer.refusal_reason else ""
        return (
            f'<div class="dossier-answer dossier-refused" data-refused="true">'
            f"<strong>No answer in this collection.</strong> {_flat(answer.answer)}{reason}</div>"
        )
    link = href or (lambda c: source_href(c, answer.collection))
    by_number = {c.number: c for c in answer.citations}
    if answer.sentences:
        body = " ".join(sentence_html(s, by_number, link) for s in answer.sentences)
    else:  # an answerer that does not split sentences: show its text as is
        body = _flat(answer.answer)
    degraded = ' data-degraded="true"' if answer.degraded else ""
    return f'<div class="dossier-answer" data-refused="false"{degraded}>{body}</div>'


def _side_html(
    value: str, quote: str, meta: str, cit: Citation | None, href: str, newer: bool = False
) -> str:
    opened = (
        f' <a class="cite-chip" data-cite="{cit.number}" href="{esc(href)}" target="_blank"'
        f' rel="noopener" title="Open the article at this sentence">[{cit.number}]</a>'
        if cit is not None
        else ""
    )
    return (
        f'<div class="side"><div><span class="value">{esc(value)}</span>{opened}</div>'
        f'<div class="quote">{_flat(quote)}</div><div class="meta">{meta}'
        f"{' · <strong>newer</strong>' if newer else ''}</div></div>"
    )


def conflict_html(
    answer: Answer, conflict: Conflict, href: Callable[[Citation], str] | None = None
) -> str:
    """The "sources disagree" mark: the answer's own quote and each disagreeing source's
    side by side (earliest first), each opening its article at the sentence."""
    link = href or (lambda c: source_href(c, answer.collection))
    by_number = {c.number: c for c in answer.citations}
    own = by_number.get(conflict.citation) if conflict.citation is not None else None
    # Which report came later, when the dates say so (ISO dates compare as text).
    dates = [d[:10] for d in [own.published if own else None] if d]
    dates += [s.published[:10] for s in conflict.sources if s.published]
    latest = max(dates) if len(set(dates)) > 1 else None

    def is_latest(published: str | None) -> bool:
        return latest is not None and bool(published) and str(published)[:10] == latest

    sides = [
        _side_html(
            conflict.value,
            own.quote if own else answer.sentences[conflict.sentence].text,
            source_meta(own.publisher, own.published, None) if own else "this answer",
            own,
            link(own) if own else "",
            is_latest(own.published if own else None),
        )
    ]
    for src in conflict.sources:
        cit = by_number.get(src.citation)
        sides.append(
            _side_html(
                src.value,
                src.quote,
                esc(src.title) + " · " + meta_line(src.publisher, src.published),
                cit,
                link(cit) if cit else "",
                is_latest(src.published),
            )
        )
    return (
        f'<div class="dossier-conflict" data-conflict="{conflict.sentence}">'
        '<span class="mark">⚠ Sources disagree</span> '
        f"<small>on {esc(conflict.value)} in the answer</small>"
        f'<div class="sides">{"".join(sides)}</div></div>'
    )


def highlight(text: str, spans: Iterable[tuple[int, int, str]]) -> str:
    """Escape ``text`` and wrap each (start, end, label) span in <mark class="cited">.

    Overlapping spans are merged into the first, since nested marks would read as noise."""
    out: list[str] = []
    pos = 0
    for start, end, label in sorted(spans):
        start, end = max(start, pos), min(end, len(text))
        if start >= end:
            continue
        out.append(_flat(text[pos:start]))
        sup = f"<sup>{esc(label)}</sup>" if label else ""
        out.append(f'<mark class="cited">{_flat(text[start:end])}{sup}</mark>')
        pos = end
    out.append(_flat(text[pos:]))
    return "".join(out)


def passage_card_html(passage_text: str, title: str, meta: str, citations: list[Citation]) -> str:
    """A passage with every sentence cited from it highlighted and numbered."""
    spans = []
    for c in citations:
        at = passage_text.find(c.quote)
        if at >= 0:
            spans.append((at, at + len(c.quote), f"[{c.number}]"))
    return (
        f'<div class="dossier-card" data-passage="{esc(citations[0].passage_id)}">'
        f"<strong>{esc(title)}</strong>"
        f'<div class="meta">{meta}</div>'
        f'<div class="text">{highlight(passage_text, spans)}</div></div>'
    )


def cited_cards(answer: Answer) -> list[tuple[str, list[Citation]]]:
    """One card per cited passage, in order of first citation."""
    groups: dict[str, list[Citation]] = {}
    for c in sorted(answer.citations, key=lambda c: c.number):
        groups.setdefault(c.passage_id, []).append(c)
    cards = []
    for cits in groups.values():
        first = cits[0]
        meta = source_meta(first.publisher, first.published, first.url)
        cards.append((passage_card_html(first.passage_text, first.title, meta, cits), cits))
    return cards


def related_card_html(passage: Passage) -> str:
    """A retrieved passage offered after a refusal: it is related, and it is not an answer."""
    score = f" · score {passage.score:.2f}"
    return (
        f'<div class="dossier-card related" data-passage="{esc(passage.passage_id)}">'
        f"<strong>{esc(passage.title)}</strong>"
        f'<div class="meta">{source_meta(passage.publisher, passage.published, passage.url, score)}'
        "</div>"
        f'<div class="text">{_flat(passage.text)}</div></div>'
    )


SCROLL_SCRIPT = """
<script>
(function () {
  // Streamlit may run this before the article is laid out, or lay it out again after, so
  // keep the mark in view for a few seconds unless the reader scrolls first. Only the
  // article box scrolls: scrollIntoView would also move the page past the title.
  let ticks = 0, stopped = false;
  const stop = () => { stopped = true; };
  const tick = () => {
    const el = document.getElementById("cited");
    const box = el && el.closest(".dossier-article");
    if (box && !box.dataset.watched) {
      box.dataset.watched = "1";
      ["wheel", "touchstart", "keydown", "mousedown"].forEach(
        (e) => box.addEventListener(e, stop, {once: true}));
    }
    if (box && box.clientHeight > 0) {
      const r = el.getBoundingClientRect(), b = box.getBoundingClientRect();
      if (r.top < b.top || r.bottom > b.bottom) {
        box.scrollTop = el.offsetTop - box.clientHeight / 3;
      } else {
        box.dataset.scrolled = "1";
      }
    }
    if (!stopped && ticks++ < 40) { setTimeout(tick, 125); }
  };
  tick();
})();
</script>
"""


def page_of(doc: DocumentDetail, offset: int) -> Page | None:
    """The page of a paged source (PDF) that holds ``offset``; None for other documents."""
    return next((p for p in doc.pages if p.start <= offset < p.end), None)


def article_html(doc: DocumentDetail, start: int, end: int, label: str = "") -> str:
    """The article with [start, end) highlighted; the mark has id="cited" to scroll to.

    A PDF shows the page that holds the cited sentence, as the reader would find it in the
    file, headed by its page number; other documents show their whole text.
    """
    page = page_of(doc, start) if end > start else None
    lo, hi = (page.start, page.end) if page is not None else (0, len(doc.text))
    body = highlight(doc.text[lo:hi], [(start - lo, min(end, hi) - lo, label)]).replace(
        '<mark class="cited">', '<mark class="cited" id="cited">', 1
    )
    heading = (
        f'<div class="meta">Page {page.page} of {doc.pages[-1].page}</div>'
        if page is not None
        else ""
    )
    return f'<div class="dossier-article" data-doc="{esc(doc.doc_id)}">{heading}{body}</div>'
