"""Ingesting from URLs: the address guard, the fetch limits, the CLI and the API.

Pages come from a real ``ThreadingHTTPServer`` on 127.0.0.1 started here; nothing leaves
the machine. The guard's classification is tested on literal addresses, with no traffic.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from dossier.engine import Dossier
from dossier.errors import AddressNotAllowed, FetchFailed, FileTooLarge
from dossier.settings import Settings, get_settings
from dossier.testing import LiveServer
from ingest.fetch import (
    AllowList,
    Fetcher,
    canonical_url,
    check_address,
    read_urls_file,
    refusal,
    url_key,
)
from service.app import create_app
from service.cli import app as cli
from tests.conftest import make_settings
from tests.documents import seed_pdf

ARTICLE = (
    b"<html><head><title>Harbour reopens after storm</title>"
    b'<meta name="description" content="The harbour story"></head><body>'
    b"<h1>Harbour reopens after storm</h1>"
    b"<p>The harbour reopened on Monday after the storm. Ferries resumed at noon.</p>"
    b"</body></html>"
)
NOTES = b"Railway strike ends\n\nThe railway strike ended on Tuesday after long talks.\n"
REPORT = seed_pdf()
LIMIT_MB = 0.05  # 50 kB: /huge is four times that
SLOW_S = 2.0
TIMEOUT_S = 0.5
MAX_REDIRECTS = 2


class Pages(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    def _send(self, body: bytes, ctype: str, length: bool = True) -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if length:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        port = int(self.server.server_address[1])  # type: ignore[index]  # an AF_INET pair
        path = self.path
        if path == "/article.html":
            self._send(ARTICLE, "text/html; charset=utf-8")
        elif path == "/notes":
            self._send(NOTES, "text/plain")
        elif path == "/huge":  # no Content-Length: the limit must hold while streaming
            self._send(b"word " * 40_000, "text/plain", length=False)
        elif path == "/huge-declared":
            self._send(b"word " * 40_000, "text/plain")
        elif path == "/report":  # a PDF whose URL says nothing of its type
            self._send(REPORT, "application/pdf")
        elif path == "/image.png":
            self._send(b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png")
        elif path.startswith("/hop/"):  # /hop/N needs N + 1 redirects to reach the article
            n = int(path.rsplit("/", 1)[1])
            self._redirect("/article.html" if n == 0 else f"/hop/{n - 1}")
        elif path == "/to-refused":  # allowed 127.0.0.1 sends us to 127.0.0.2: not allowed
            self._redirect(f"http://127.0.0.2:{port}/article.html")
        elif path == "/slow":
            time.sleep(SLOW_S)
            self._send(NOTES, "text/plain")
        elif path == "/echo-host":  # what the client sent as Host
            self._send(f"Host\n\n{self.headers.get('Host')}\n".encode(), "text/plain")
        else:
            self.send_error(404)


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _settings(tmp: Path, allow: bool = True, **overrides: Any) -> Settings:
    overrides.setdefault("fetch_allow", ["127.0.0.1"] if allow else [])
    return make_settings(
        tmp,
        store="memory",
        embedder="hashing",
        fetch_timeout_s=TIMEOUT_S,
        fetch_max_redirects=MAX_REDIRECTS,
        ingest_max_file_mb=LIMIT_MB,
        **overrides,
    )


# -- the address guard, on literal addresses -----------------------------------
@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.254", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("127.0.0.1", "loopback"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-public"),
        ("::1", "loopback"),
        ("::", "unspecified"),
        ("fe80::1", "link-local"),
        ("fd00::1", "private"),
        ("fec0::1", "site-local"),
        ("ff02::1", "multicast"),
        ("::ffff:127.0.0.1", "loopback"),
        ("::ffff:10.0.0.1", "private"),
        ("2002:7f00:1::", "loopback"),  # 6to4 carrying 127.0.0.1
        ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 carrying 169.254.169.254
    ],
)
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    assert refusal(ipaddress.ip_address(address)) == why


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses_pass(address: str) -> None:
    assert refusal(ipaddress.ip_address(address)) is None


def test_allow_list_names_hosts_and_cidrs() -> None:
    allow = AllowList.parse(["127.0.0.1", "10.0.0.0/8", "Intranet.Example", "fd00::/8"])
    ip = ipaddress.ip_address
    assert allow.allows("any", ip("127.0.0.1"))
    assert allow.allows("any", ip("::ffff:127.0.0.1"))  # the same host, mapped
    assert not allow.allows("any", ip("127.0.0.2"))
    assert allow.allows("any", ip("10.200.0.1"))
    assert allow.allows("intranet.example.", ip("192.168.0.9"))
    assert allow.allows("any", ip("fd12::1"))
    assert not allow.allows("any", ip("fe80::1"))


def test_public_fetching_can_be_turned_off() -> None:
    allow = AllowList.parse(["10.0.0.0/8"])
    public = ipaddress.ip_address("93.184.216.34")
    check_address("u", "example.com", public, allow)
    with pytest.raises(AddressNotAllowed, match="DOSSIER_FETCH_PUBLIC=false"):
        check_address("u", "example.com", public, allow, public=False)
    check_address("u", "intranet", ipaddress.ip_address("10.0.0.7"), allow, public=False)


def test_urls_are_canonical_and_checked() -> None:
    assert canonical_url("http://Example.com") == "http://example.com/"
    assert canonical_url("https://example.com/a?b=1#part") == "https://example.com/a?b=1"
    for bad, words in [
        ("ftp://example.com/x", "only http:// and https://"),
        ("file:///etc/passwd", "only http:// and https://"),
        ("https://user:secret@example.com/", "remove the user name and password"),
    ]:
        with pytest.raises(FetchFailed, match=words):
            canonical_url(bad)


def test_urls_file_skips_comments(tmp_path: Path) -> None:
    listed = tmp_path / "urls.txt"
    listed.write_text(
        "# pages\nhttps://a.example/x#frag\n\n  https://b.example/  # the second\n#c\n"
    )
    assert read_urls_file(listed) == ["https://a.example/x#frag", "https://b.example/"]


# -- fetching from the local site ----------------------------------------------
def test_loopback_is_refused_without_the_allow_list(tmp_path: Path, site: str) -> None:
    with (
        Fetcher(_settings(tmp_path, allow=False)) as fetcher,
        pytest.raises(AddressNotAllowed, match=r"loopback.*DOSSIER_FETCH_ALLOW"),
    ):
        fetcher.fetch(f"{site}/article.html")
    # A name is judged by what it resolves to.
    port = site.rsplit(":", 1)[1]
    with (
        Fetcher(_settings(tmp_path, allow=False)) as fetcher,
        pytest.raises(AddressNotAllowed, match="localhost resolves to"),
    ):
        fetcher.fetch(f"http://localhost:{port}/article.html")


def test_only_allowed_hosts_refuses_before_dns(tmp_path: Path) -> None:
    # .invalid never resolves; the refusal comes first, so no lookup is attempted.
    settings = _settings(tmp_path, allow=False, fetch_public=False)
    with (
        Fetcher(settings) as fetcher,
        pytest.raises(AddressNotAllowed, match="not in DOSSIER_FETCH_ALLOW"),
    ):
        fetcher.fetch("https://news.example.invalid/story")


def test_the_checked_address_is_dialled_with_the_real_host_name(tmp_path: Path, site: str) -> None:
    # Allowed by name; the connection goes to the address checked, the name travels in Host.
    port = site.rsplit(":", 1)[1]
    settings = _settings(tmp_path, allow=False, fetch_allow=["localhost"], fetch_public=False)
    with Fetcher(settings) as fetcher:
        page = fetcher.fetch(f"http://localhost:{port}/echo-host")
    assert page.data.decode().split() == ["Host", f"localhost:{port}"]


def test_a_redirect_to_a_refused_address_is_refused(tmp_path: Path, site: str) -> None:
    with (
        Fetcher(_settings(tmp_path)) as fetcher,
        pytest.raises(AddressNotAllowed, match=r"127\.0\.0\.2, a loopback address"),
    ):
        fetcher.fetch(f"{site}/to-refused")


def test_fetch_follows_redirects_up_to_the_limit(tmp_path: Path, site: str) -> None:
    with Fetcher(_settings(tmp_path)) as fetcher:
        page = fetcher.fetch(f"{site}/hop/{MAX_REDIRECTS - 1}")
        assert (page.final_url, page.suffix, page.data) == (
            f"{site}/article.html",
            ".html",
            ARTICLE,
        )
        with pytest.raises(FetchFailed, match="more than 2 redirects"):
            fetcher.fetch(f"{site}/hop/{MAX_REDIRECTS}")


@pytest.mark.parametrize(
    ("path", "error", "words"),
    [
        ("/huge", FileTooLarge, "per-file limit"),
        ("/huge-declared", FileTooLarge, "per-file limit"),
        ("/image.png", FetchFailed, "content type is 'image/png'"),
        ("/missing", FetchFailed, "HTTP 404"),
        ("/slow", FetchFailed, "did not answer within 0.5 s"),
    ],
)
def test_fetch_limits_fail_clearly(
    tmp_path: Path, site: str, path: str, error: type[Exception], words: str
) -> None:
    started = time.monotonic()
    with Fetcher(_settings(tmp_path)) as fetcher, pytest.raises(error, match=words):
        fetcher.fetch(site + path)
    assert time.monotonic() - started < SLOW_S  # the timeout cut the slow page short


# -- the CLI -------------------------------------------------------------------
@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("DOSSIER_DATA_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("DOSSIER_EMBEDDER", "hashing")
    monkeypatch.setenv("DOSSIER_FETCH_ALLOW", '["127.0.0.1"]')
    monkeypatch.setenv("DOSSIER_FETCH_TIMEOUT_S", str(TIMEOUT_S))
    monkeypatch.setenv("DOSSIER_FETCH_MAX_REDIRECTS", str(MAX_REDIRECTS))
    monkeypatch.setenv("DOSSIER_INGEST_MAX_FILE_MB", str(LIMIT_MB))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_cli_ingests_urls_and_reingest_embeds_nothing(cli_env: Path, site: str) -> None:
    runner = CliRunner()
    one = runner.invoke(cli, ["ingest", f"{site}/article.html", "--collection", "web"])
    assert one.exit_code == 0, one.output
    assert "web: 1 added" in one.output and "1 chunks embedded" in one.output

    listed = cli_env / "urls.txt"
    listed.write_text(
        f"# the site\n{site}/article.html\n{site}/notes  # plain text\n"
        f"{site}/image.png\n{site}/huge\n{site}/to-refused\n"
    )
    many = runner.invoke(cli, ["ingest", "--urls", str(listed), "--collection", "web"])
    assert many.exit_code == 0, many.output
    assert "1 added, 0 updated, 1 unchanged" in many.output, many.output
    assert "2 failed, 1 skipped" in many.output
    assert f"failed: {site}/image.png:" in many.output and "image/png" in many.output
    assert f"skipped: {site}/huge:" in many.output  # too large: skipped, as a file would be
    assert f"failed: {site}/to-refused:" in many.output

    again = runner.invoke(cli, ["ingest", "--urls", str(listed), "--collection", "web"])
    assert "0 added, 0 updated, 2 unchanged" in again.output
    assert "0 chunks embedded" in again.output

    # The bytes and where they came from are kept beside the index.
    key = url_key(f"{site}/article.html")
    folder = cli_env / "index" / "fetched" / "web"
    assert (folder / f"{key}.html").read_bytes() == ARTICLE
    sidecar = json.loads((folder / f"{key}.json").read_text())
    assert sidecar["url"] == sidecar["final_url"] == f"{site}/article.html"
    assert sidecar["content_type"] == "text/html" and len(sidecar["sha256"]) == 64


def test_cli_needs_a_collection_for_urls(cli_env: Path, site: str) -> None:
    result = CliRunner().invoke(cli, ["ingest", f"{site}/article.html"])
    assert result.exit_code == 2
    assert "--collection is required" in result.output


def test_cli_refuses_loopback_without_the_allow_list(
    cli_env: Path, site: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOSSIER_FETCH_ALLOW", "[]")
    get_settings.cache_clear()
    result = CliRunner().invoke(cli, ["ingest", f"{site}/article.html", "--collection", "web"])
    assert "0 added" in result.output and "1 failed" in result.output
    assert "a loopback address, which is refused" in result.output


# -- the API -------------------------------------------------------------------
@pytest.fixture
def api(tmp_path: Path) -> Iterator[httpx.Client]:
    settings = _settings(tmp_path, ingest_sync_max_documents=4)
    with (
        LiveServer(create_app(settings, Dossier(settings))) as live,
        httpx.Client(base_url=live.url, timeout=60) as client,
    ):
        yield client


def test_api_ingests_urls_reports_failures_and_is_idempotent(api: httpx.Client, site: str) -> None:
    urls = [f"{site}/article.html", f"{site}/notes", f"{site}/image.png", f"{site}/slow"]
    first = api.post("/v1/collections/web/urls", json={"urls": urls})
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["added"], body["chunks_embedded"]) == (2, 2)
    reasons = {f["source"]: f["reason"] for f in body["failed"]}
    assert "image/png" in reasons[f"{site}/image.png"]
    assert "did not answer" in reasons[f"{site}/slow"]
    refs = {d["source"]: d["doc_id"] for d in body["documents"]}
    assert set(refs) == {f"{site}/article.html", f"{site}/notes"}

    doc = api.get(f"/v1/documents/{refs[f'{site}/article.html']}", params={"collection": "web"})
    assert doc.json()["url"] == f"{site}/article.html"  # citations carry the page's URL
    assert doc.json()["title"] == "Harbour reopens after storm"

    again = api.post("/v1/collections/web/urls", json={"urls": urls[:2]}).json()
    assert (again["added"], again["unchanged"], again["chunks_embedded"]) == (0, 2, 0)


def test_api_ingests_a_pdf_by_url_with_its_pages(api: httpx.Client, site: str) -> None:
    body = api.post("/v1/collections/web/urls", json={"urls": [f"{site}/report"]}).json()
    assert body["added"] == 1, body
    doc_id = body["documents"][0]["doc_id"]
    doc = api.get(f"/v1/documents/{doc_id}", params={"collection": "web"}).json()
    assert len(doc["pages"]) >= 3 and doc["url"] == f"{site}/report"
    answer = api.post(
        "/v1/ask", json={"question": "Who did Albania blame?", "collection": "web"}
    ).json()
    assert answer["citations"] and all(c["page"] for c in answer["citations"])


def test_api_runs_large_url_batches_as_jobs(api: httpx.Client, site: str) -> None:
    urls = [f"{site}/article.html", f"{site}/notes", *(f"{site}/hop/{n}" for n in range(3))]
    queued = api.post("/v1/collections/web/urls", json={"urls": urls})
    assert queued.status_code == 202, queued.text
    deadline = time.monotonic() + 60
    while (job := api.get(queued.headers["location"]).json())["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "done", job
    result = job["result"]
    # /hop/0 and /hop/1 end at the article (stored once, as a duplicate); /hop/2 is one
    # redirect too many.
    assert result["added"] == 2
    assert [f["source"] for f in result["failed"]] == [f"{site}/hop/2"]


def test_api_validates_url_bodies(api: httpx.Client) -> None:
    bodies: list[dict[str, list[str]]] = [
        {"urls": []},
        {"urls": ["ftp://example.com/x"]},
        {"urls": ["not a url"]},
    ]
    for body in bodies:
        assert api.post("/v1/collections/web/urls", json=body).status_code == 422


def test_api_refuses_loopback_without_the_allow_list(tmp_path: Path, site: str) -> None:
    settings = _settings(tmp_path, allow=False)
    with (
        LiveServer(create_app(settings, Dossier(settings))) as live,
        httpx.Client(base_url=live.url, timeout=60) as client,
    ):
        body = client.post(
            "/v1/collections/web/urls", json={"urls": [f"{site}/article.html"]}
        ).json()
    assert body["added"] == 0
    assert "DOSSIER_FETCH_ALLOW" in body["failed"][0]["reason"]


def test_cli_still_ingests_a_folder(cli_env: Path) -> None:
    folder = cli_env / "wire"
    folder.mkdir()
    (folder / "a.txt").write_bytes(NOTES)
    result = CliRunner().invoke(cli, ["ingest", str(folder)])
    assert result.exit_code == 0, result.output
    assert "wire: 1 added" in result.output  # the collection defaults to the folder's name
    both = CliRunner().invoke(cli, ["ingest", str(folder), "--urls", str(folder / "a.txt")])
    assert both.exit_code == 2 and "the only other target may be a URL" in both.output
