"""Real document files the tests and benchmarks write themselves: news pages, PDFs, Word.

Nothing here is a third-party page: the pages are built from a template with the
boilerplate that real news sites carry (navigation, cookie banners, ads inside the
article, related links, newsletter boxes, footers) and their metadata in the places
sites put it (Open Graph, ``article:*`` meta tags, JSON-LD, ``<time>``).
"""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ingest.readers.text import read_markdown

ROOT = Path(__file__).resolve().parents[1]
SEED_MD = ROOT / "corpus" / "albania-iran" / "2022-09-07-albania-cuts-ties-to-iran.md"

# Lines that must never be indexed from the pages below.
BOILERPLATE = (
    "We use cookies to improve your experience",
    "Accept all cookies",
    "ADVERTISEMENT",
    "Buy the new phone today",
    "Sponsored: Cheap flights",
    "Related stories",
    "Iran protests continue",
    "Sign up for our newsletter",
    "All rights reserved",
    "Privacy policy",
    "Most read",
)


@dataclass
class Page:
    """A saved news page and what a reader must find in it."""

    name: str
    html: str
    title: str
    author: str
    published: str
    publisher: str
    url: str
    paragraphs: list[str] = field(default_factory=list)


def _p(paragraphs: Sequence[str]) -> str:
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def news_page(
    *,
    title: str,
    site: str,
    author: str,
    published: str,
    url: str,
    paragraphs: Sequence[str],
    style: int = 0,
) -> str:
    """A news page with its boilerplate; ``style`` picks how metadata and junk are marked up."""
    mid = max(1, len(paragraphs) // 2)
    first, second = _p(paragraphs[:mid]), _p(paragraphs[mid:])
    nav = '<nav class="site-nav"><a href="/">Home</a> <a href="/world">World</a></nav>'
    footer = (
        f"<footer><p>© 2022 {html.escape(site)}. All rights reserved.</p>"
        '<a href="/privacy">Privacy policy</a></footer>'
    )
    related = (
        '<aside class="related"><h3>Related stories</h3><ul>'
        '<li><a href="/a">Iran protests continue</a></li></ul></aside>'
    )
    if style == 0:  # Open Graph + article:* meta tags, a class="ad" block, a cookie div
        head = (
            f"<title>{html.escape(title)} | World News | {html.escape(site)}</title>"
            f'<meta property="og:title" content="{html.escape(title)}">'
            f'<meta property="og:site_name" content="{html.escape(site)}">'
            f'<meta name="author" content="{html.escape(author)}">'
            f'<meta property="article:published_time" content="{published}T10:15:00Z">'
            f'<link rel="canonical" href="{url}">'
        )
        banner = (
            '<div class="cookie-banner"><p>We use cookies to improve your experience. '
            "Accept all cookies?</p><button>Accept</button></div>"
        )
        ad = '<div class="ad advertisement"><p>ADVERTISEMENT - Buy the new phone today!</p></div>'
        body = f"{nav}{banner}<article><h1>{html.escape(title)}</h1>{first}{ad}{second}</article>"
    elif style == 1:  # JSON-LD NewsArticle, an id'd consent dialog, a sponsored block
        ld = {
            "@context": "https://schema.org",
            "@type": "NewsArticle",
            "headline": title,
            "datePublished": f"{published}T08:00:00+01:00",
            "author": {"@type": "Person", "name": author},
            "publisher": {"@type": "Organization", "name": site},
            "mainEntityOfPage": url,
        }
        head = (
            f"<title>{html.escape(site)} - {html.escape(title)}</title>"
            f'<script type="application/ld+json">{json.dumps(ld)}</script>'
            f'<meta property="og:site_name" content="{html.escape(site)}">'
            f'<link rel="canonical" href="{url}">'
        )
        banner = (
            '<div id="gdpr-consent" role="dialog"><p>We use cookies to improve your '
            "experience. Accept all cookies?</p></div>"
        )
        ad = '<aside class="sponsored-content"><p>Sponsored: Cheap flights to Tirana!</p></aside>'
        body = (
            f"{banner}{nav}<main><article><header><h1>{html.escape(title)}</h1>"
            f'<p class="byline">By {html.escape(author)}</p></header>'
            f"{first}{ad}{second}</article></main>"
        )
    else:  # plain meta name= tags, a <time> element, newsletter box, "most read" list
        head = (
            f"<title>{html.escape(title)} – {html.escape(site)}</title>"
            f'<meta name="title" content="{html.escape(title)}">'
            f'<meta name="author" content="{html.escape(author)}">'
            f'<meta name="date" content="{published}">'
            f'<meta property="og:site_name" content="{html.escape(site)}">'
            f'<meta property="og:url" content="{url}">'
        )
        banner = (
            '<div class="newsletter-signup"><p>Sign up for our newsletter</p>'
            "<form><input type='email'></form></div>"
        )
        ad = '<div class="adv-slot"><p>ADVERTISEMENT</p><p>Buy the new phone today!</p></div>'
        body = (
            f'<div class="page"><div class="article-body"><h1>{html.escape(title)}</h1>'
            f'<time datetime="{published}">{published}</time>'
            f"{first}{ad}{second}{banner}</div>"
            '<div class="most-read"><h3>Most read</h3><ol><li>Iran protests continue</li></ol>'
            "</div></div>"
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">{head}</head>'
        f"<body>{body}{related}{footer}</body></html>"
    )


_ARTICLES = (
    (
        "Albania cuts ties with Iran over cyber-attack",
        "The Daily Example",
        "Jane Reporter",
        "2022-09-07",
        [
            "Albania has cut diplomatic ties with Iran and ordered its diplomats to leave "
            "within 24 hours, over a cyber-attack in July.",
            "Prime Minister Edi Rama said an investigation found the attack was orchestrated "
            "by Iran, which hired four groups to carry it out.",
            "The attack on 15 July temporarily shut down numerous Albanian government digital "
            "services and websites.",
            "Iran's foreign ministry rejected the claim as baseless and said it condemned any "
            "use of cyberspace to attack infrastructure.",
        ],
    ),
    (
        "US condemns Iranian cyber-attack on NATO ally Albania",
        "Example Wire",
        "Omar Correspondent",
        "2022-09-08",
        [
            "The White House said the United States would take further action to hold Iran "
            "accountable for actions that threaten the security of a NATO ally.",
            "A National Security Council spokeswoman said Washington had concluded that Iran "
            "was responsible for the attack after a thorough investigation.",
            "The statement followed Albania's decision to expel the Iranian embassy's staff.",
            "Officials said the attack was meant to disrupt Albanian public services and "
            "delete government data.",
        ],
    ),
    (
        "Hackers leak Albanian police data after embassy closure",
        "Balkan Example Times",
        "Ana Analyst",
        "2022-09-11",
        [
            "A second wave of cyber-attacks hit Albania's border control systems days after "
            "the country severed relations with Tehran.",
            "Interior Minister Bledi Cuci said the attack on the Total Information Management "
            "System was carried out from the same aggressors.",
            "Police data were leaked online by a group calling itself Homeland Justice.",
            "Travellers at the borders were checked manually while the systems were restored.",
        ],
    ),
)


def news_pages() -> list[Page]:
    """One saved page per article and markup style."""
    pages = []
    for style, (title, site, author, published, paragraphs) in enumerate(_ARTICLES):
        url = f"https://news.example.com/{published}/{re.sub(r'[^a-z]+', '-', title.lower())}"
        pages.append(
            Page(
                name=f"page-{style}.html",
                html=news_page(
                    title=title,
                    site=site,
                    author=author,
                    published=published,
                    url=url,
                    paragraphs=paragraphs,
                    style=style,
                ),
                title=title,
                author=author,
                published=published,
                publisher=site,
                url=url,
                paragraphs=list(paragraphs),
            )
        )
    return pages


def seed_article() -> tuple[str, list[str], dict[str, object]]:
    """The seed article's title, paragraphs and front matter, read from the corpus."""
    raw = read_markdown(SEED_MD, SEED_MD.read_bytes(), 10**7)
    paragraphs = [p.strip() for p in raw.text.split("\n\n") if p.strip()]
    if paragraphs and paragraphs[0] == raw.title:
        paragraphs = paragraphs[1:]
    return raw.title, paragraphs, raw.meta


def seed_page() -> str:
    """The seed article saved as a news page (style 0), boilerplate included."""
    title, paragraphs, meta = seed_article()
    return news_page(
        title=title,
        site="The Daily Example",
        author="Jane Reporter",
        published=str(meta.get("published")),
        url="https://news.example.com/2022/09/07/albania-iran",
        paragraphs=paragraphs,
    )


# -- PDF (fpdf2, a dev dependency) ---------------------------------------------------

_LATIN1 = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "..."})


def _latin1(text: str) -> str:
    # fpdf2's core fonts are Latin-1; no font file is needed this way.
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def pdf_bytes(
    pages: Sequence[Sequence[str]],
    *,
    title: str | None = None,
    author: str | None = None,
    created: dt.datetime | None = None,
    heading: str | None = None,
) -> bytes:
    """A PDF with a text layer: each item of ``pages`` is one page's paragraphs."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    if author:
        pdf.set_author(author)
    pdf.set_creation_date(created or dt.datetime(2022, 9, 7, tzinfo=dt.UTC))
    for number, paragraphs in enumerate(pages):
        pdf.add_page()
        if heading and number == 0:
            pdf.set_font("helvetica", style="B", size=15)
            pdf.multi_cell(0, 8, _latin1(heading), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(4)
        pdf.set_font("helvetica", size=11)
        for paragraph in paragraphs:
            pdf.multi_cell(0, 6, _latin1(paragraph), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.ln(3)
    return bytes(pdf.output())


def seed_pdf(per_page: int = 6) -> bytes:
    """The seed article as a multi-page PDF (``per_page`` paragraphs a page)."""
    title, paragraphs, _ = seed_article()
    pages = [paragraphs[i : i + per_page] for i in range(0, len(paragraphs), per_page)]
    return pdf_bytes(pages, title=title, author="Staff and wire reports", heading=title)


def two_column_pdf(left: Sequence[str], right: Sequence[str]) -> bytes:
    """One page set in two columns: a reader must give the left column before the right."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=10)
    pdf.add_page()
    pdf.set_xy(10, 20)
    pdf.multi_cell(90, 5, _latin1(" ".join(left)))
    pdf.set_xy(110, 20)
    pdf.multi_cell(90, 5, _latin1(" ".join(right)))
    return bytes(pdf.output())


def scanned_pdf(pages: int = 2) -> bytes:
    """Pages with only drawings, no text layer: what a scan without OCR looks like."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.rect(20, 20, 120, 160, style="F")
    return bytes(pdf.output())


def encrypted_pdf(text: str, user_password: str | None = "secret") -> bytes:
    """A PDF that needs ``user_password`` to open (None: an owner password only)."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, _latin1(text))
    pdf.set_encryption(owner_password="owner", user_password=user_password)
    return bytes(pdf.output())


# -- Word (python-docx) --------------------------------------------------------------


def docx_bytes(
    blocks: Sequence[tuple[str, str]],
    *,
    title: str | None = None,
    author: str | None = None,
    created: dt.datetime | None = None,
    table: Sequence[Sequence[str]] = (),
) -> bytes:
    """A Word file: ``blocks`` are (kind, text) with kind "title", "heading" or "p"."""
    import docx

    document = docx.Document()
    for kind, text in blocks:
        if kind == "title":
            document.add_heading(text, level=0)
        elif kind == "heading":
            document.add_heading(text, level=1)
        else:
            document.add_paragraph(text)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    props = document.core_properties
    if title is not None:
        props.title = title
    if author is not None:
        props.author = author
    if created is not None:
        props.created = created
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb_docx(unpacked_mb: int = 200) -> bytes:
    """A .docx-named zip whose one part inflates to ``unpacked_mb`` MB of zeros."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("word/document.xml", "w") as part:
            chunk = b"\0" * 1_000_000
            for _ in range(unpacked_mb):
                part.write(chunk)
    return out.getvalue()
