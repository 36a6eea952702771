"""The ``dossier`` command (an edge, like the HTTP app): ingest, serve, ask, search, eval."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dossier.errors import DossierError, InvalidInput
from dossier.settings import get_settings

if TYPE_CHECKING:
    from service.keys import KeyStore

app = typer.Typer(
    help="Dossier: cited answers over a curated corpus.", no_args_is_help=True, add_completion=False
)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    # bm25s logs every index build at DEBUG through its own handler.
    logging.getLogger("bm25s").setLevel(logging.WARNING)


def _fail(exc: DossierError) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _is_url(target: str) -> bool:
    return target.lower().startswith(("http://", "https://"))


@app.command()
def ingest(
    path: Annotated[
        str | None,
        typer.Argument(
            help="A folder of articles (.md, .txt, .html), one file, or one http(s) URL.",
            show_default=False,
        ),
    ] = None,
    collection: Annotated[
        str | None,
        typer.Option(help="Collection name; default: folder name (required for URLs)."),
    ] = None,
    urls: Annotated[
        Path | None,
        typer.Option(
            "--urls",
            help="A file of URLs to fetch and ingest, one a line ('#' starts a comment).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Chunk, embed and index articles. Re-running only does what changed.

    A folder is synchronised (files gone from it are removed from the collection); URLs
    are added or updated, leaving the collection's other documents alone.
    """
    _setup_logging(verbose)
    from dossier.engine import Dossier
    from ingest.pipeline import Ingestor, IngestReport

    if path is None and urls is None:
        _fail(InvalidInput("give a folder, a file or a URL to ingest, or --urls FILE."))
        return
    settings = get_settings()
    engine = Dossier(settings)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    try:
        if urls is not None or (path is not None and _is_url(path)):
            from ingest.fetch import read_urls_file, url_documents

            if path is not None and not _is_url(path):
                raise InvalidInput(f"{path}: with --urls, the only other target may be a URL.")
            if not collection:
                raise InvalidInput("--collection is required when ingesting URLs.")
            targets = ([path] if path is not None else []) + (
                read_urls_file(urls) if urls is not None else []
            )
            if not targets:
                raise InvalidInput(f"{urls}: no URLs in the file (one a line).")
            report = IngestReport(collection=collection)
            docs = url_documents(settings, ingestor, collection, targets, report)
            report = ingestor.upsert(collection, docs, report)
        else:
            assert path is not None  # checked above
            folder = Path(path)
            report = ingestor.ingest(folder, collection or folder.resolve().name)
    except DossierError as exc:
        _fail(exc)
        return
    typer.echo(report.summary())
    for dup, canonical in report.duplicates[:10]:
        typer.echo(f"  duplicate: {dup} (same text as {canonical})")
    if len(report.duplicates) > 10:
        typer.echo(f"  … and {len(report.duplicates) - 10} more duplicates")
    # Every skip and failure, with its reason: a bad file is reported, never silently lost.
    for skipped, reason in report.skipped:
        typer.secho(f"  skipped: {skipped}: {reason}", fg=typer.colors.YELLOW)
    for failed, reason in report.failed:
        typer.secho(f"  failed: {failed}: {reason}", fg=typer.colors.YELLOW)


@app.command("ingest-corpus")
def ingest_corpus(verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Ingest every collection under the corpus folder (corpus/<collection>/)."""
    settings = get_settings()
    folders = sorted(p for p in settings.corpus_dir.iterdir() if p.is_dir())
    if not folders:
        typer.secho(f"no collections under {settings.corpus_dir}", fg=typer.colors.YELLOW)
    for folder in folders:
        ingest(str(folder), folder.name, verbose=verbose)


@app.command("index-sentences")
def index_sentences(
    collection: Annotated[
        str | None, typer.Option(help="Collection name; default: the default collection.")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Save sentence vectors and the sentence table for a collection's current version.

    Ingestion saves them; this adds them to a collection indexed before it did (or the
    table alone, each passage's sentence spans and terms, where only vectors were saved),
    without re-ingesting. Running servers start using them within seconds.
    """
    _setup_logging(verbose)
    from dossier.engine import Dossier
    from dossier.index.embeddings import embed_array, embedder_id
    from dossier.index.lexical import save_current, save_sentence_vectors

    settings = get_settings()
    engine = Dossier(settings)
    try:
        name = engine.collection(collection)
    except DossierError as exc:
        _fail(exc)
        return
    path = save_current(
        engine.store, settings.lexical_path, name, k1=settings.bm25_k1, b=settings.bm25_b
    )
    stats = save_sentence_vectors(
        path, lambda texts: embed_array(engine.embedder, texts), embedder_id(engine.embedder)
    )
    if stats["sentences"]:
        typer.echo(
            f"{name}: {stats['sentences']:.0f} sentences, {stats['embedded']:.0f} embedded, "
            f"{stats['passages']:.0f} passages split, {stats['seconds']:.2f} s"
        )
    elif stats["passages"]:
        typer.echo(
            f"{name}: sentence vectors already saved; {stats['passages']:.0f} passages' "
            f"sentence spans and terms added, {stats['seconds']:.2f} s"
        )
    else:
        typer.echo(f"{name}: sentence vectors already saved")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes (one per core). Each loads the memory-mapped BM25 index "
            "that ingestion saved, so they share its pages.",
        ),
    ] = 1,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    settings = get_settings()
    if host:
        # The app decides whether keys are required from the address it is bound to.
        settings = settings.model_copy(update={"host": host})
    _setup_logging(False)
    if host:
        # Workers build their own settings from the environment, so the bound address
        # (which decides whether keys are required) travels there too.
        os.environ["DOSSIER_HOST"] = host
        get_settings.cache_clear()
    # An import string, so uvicorn can start each worker process with its own engine;
    # the workers read the same DOSSIER_* settings from the environment and .env.
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=settings.host,
        port=port or settings.port,
        workers=workers,
    )


keys_app = typer.Typer(help="API keys for the HTTP API (stored hashed beside the index).")
app.add_typer(keys_app, name="keys")


def _key_store() -> KeyStore:
    from service.keys import KEYS_FILE, KeyStore

    settings = get_settings()
    return KeyStore(settings.data_dir / KEYS_FILE, settings.state_url)


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who or what the key is for, e.g. reporting-app.")],
    collections: Annotated[
        str, typer.Option(help="Comma-separated collection names, or '*' for all.")
    ],
    role: Annotated[
        str, typer.Option(help="read: ask/search/read; write: also ingest; admin: everything.")
    ] = "read",
) -> None:
    """Create a key and print its token once; only a hash of it is stored."""
    try:
        key, token = _key_store().create(name, collections, role)
    except DossierError as exc:
        _fail(exc)
        return
    typer.echo(token)
    typer.secho(
        f"key {key.id} ({key.name}, {key.role}, collections: {','.join(key.collections)}). "
        "Store the token now: it is not shown again.",
        err=True,
    )


@keys_app.command("list")
def keys_list() -> None:
    """Every key: id, name, role, collections, created, revoked."""
    for k in _key_store().list_keys():
        state = f"revoked {k.revoked}" if k.revoked else "active"
        typer.echo(
            f"{k.id}  {k.name}  {k.role}  {','.join(k.collections)}  created {k.created}  {state}"
        )


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The id from `dossier keys list`.")],
) -> None:
    """Revoke a key; requests with it get 401 from then on."""
    try:
        key = _key_store().revoke(key_id)
    except DossierError as exc:
        _fail(exc)
        return
    typer.echo(f"revoked {key.id} ({key.name})")


@app.command()
def ask(
    question: str,
    collection: Annotated[str | None, typer.Option()] = None,
    top_k: Annotated[int | None, typer.Option()] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Answer a question with citations, from the command line."""
    from dossier.engine import Dossier

    _setup_logging(False)
    try:
        answer = Dossier(get_settings()).ask(question, collection, top_k)
    except DossierError as exc:
        _fail(exc)
        return
    if as_json:
        from service.schemas import AnswerPublic

        typer.echo(AnswerPublic.from_domain(answer).model_dump_json(indent=2))
        return
    typer.echo(answer.text)
    for c in answer.citations:
        typer.echo(
            f"  [{c.number}] {c.title} ({c.publisher or 'unknown'}, {c.published or 'n.d.'})"
        )
        typer.echo(f"      doc {c.doc_id} chars {c.start}-{c.end}: {c.quote[:120]}")
    if answer.refused:
        typer.echo(f"  (refused: {answer.refusal_reason})")


@app.command()
def search(
    query: str,
    collection: Annotated[str | None, typer.Option()] = None,
    k: Annotated[int | None, typer.Option("--k", "-k")] = None,
    doc_id: Annotated[
        list[str] | None, typer.Option(help="Only this document; repeat for several.")
    ] = None,
    after: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Published on or after this day."),
    ] = None,
    before: Annotated[
        datetime | None,
        typer.Option(formats=["%Y-%m-%d"], help="Published on or before this day."),
    ] = None,
    publisher: Annotated[str | None, typer.Option(help="Only this publisher (any case).")] = None,
) -> None:
    """Ranked passages for a query, optionally only of some documents, dates or a publisher."""
    from dossier.engine import Dossier
    from dossier.index.filters import PassageFilter

    _setup_logging(False)
    try:
        filters = PassageFilter(
            doc_ids=tuple(doc_id) if doc_id else None,
            published_after=after.date() if after else None,
            published_before=before.date() if before else None,
            publisher=publisher,
        )
        results = Dossier(get_settings()).search(query, collection, k, filters=filters)
    except DossierError as exc:
        _fail(exc)
        return
    for rank, sp in enumerate(results, 1):
        snippet = json.dumps(sp.passage.text[:160], ensure_ascii=False)
        typer.echo(f"{rank:2d}. {sp.score:.3f} {sp.passage.title} — {snippet}")


@app.command("eval")
def eval_(
    suite: Annotated[
        str,
        typer.Option(
            help="seed, squad2, rgb, bbc, bbc-chat, conflicts, or a .jsonl golden set path."
        ),
    ] = "seed",
    answerer: Annotated[
        str | None, typer.Option(help="Answerer name; e.g. extractive-no-refusal to test a gate.")
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N questions.")] = None,
    out: Annotated[Path, typer.Option(help="Folder for the Markdown/JSON/JUnit reports.")] = Path(
        "evals/reports"
    ),
    docs: Annotated[
        Path | None, typer.Option(help="Folder ingested into the dataset's collection first.")
    ] = None,
    collection: Annotated[str | None, typer.Option(help="Collection for a .jsonl set.")] = None,
    thresholds: Annotated[Path | None, typer.Option(help="Thresholds TOML.")] = None,
) -> None:
    """Grounding evals: exits 1 when a threshold of evals/thresholds.toml is missed."""
    from evals.command import run

    _setup_logging(False)
    try:
        code = run(
            get_settings(),
            suite,
            answerer=answerer,
            limit=limit,
            out=out,
            docs=docs,
            collection=collection,
            thresholds=thresholds,
            echo=typer.echo,
        )
    except DossierError as exc:
        _fail(exc)
        return
    raise typer.Exit(code=code)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":  # `python -m service.cli`
    main()
