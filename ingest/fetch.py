"""Articles from URLs: fetch a page safely, keep its bytes, and turn it into a Document.

An edge like the loaders: the only ingestion code that talks to the network. A URL is
fetched with a byte limit enforced while streaming (DOSSIER_INGEST_MAX_FILE_MB, the same as
a file's), connect/read and total time limits, a content-type allow-list, at most
DOSSIER_FETCH_MAX_REDIRECTS redirects, and an address guard (SSRF) applied to every hop.

The fetched bytes are kept under ``<data_dir>/fetched/<collection>/<sha256 of url>.<ext>``
with a JSON sidecar, so a document's source can be re-read; its id is derived from the URL
and its content hash from its text, so re-ingesting an unchanged page embeds nothing.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import httpx

from dossier.errors import (
    AddressNotAllowed,
    ConfigurationError,
    DossierError,
    FetchFailed,
    FileTooLarge,
    NotIndexed,
)
from dossier.index.store import validate_collection_name
from dossier.models import Document
from dossier.settings import Settings
from ingest.loaders import parse
from ingest.pipeline import Ingestor, IngestReport

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# What a page may be, and the file suffix that picks its reader in ingest.loaders.parse.
CONTENT_TYPES: dict[str, str] = {
    "text/html": ".html",
    "application/xhtml+xml": ".html",
    "text/plain": ".txt",
    "text/markdown": ".md",
    "text/x-markdown": ".md",
    "application/pdf": ".pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
SCHEMES = {"http": 80, "https": 443}
USER_AGENT = "Dossier-ingest/1 (+https://github.com/dossier)"


# -- the address guard ---------------------------------------------------------
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched ("loopback", "private", ...); None when public.

    Pure classification, so it is unit-tested on literal addresses without any traffic.
    """
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:127.0.0.1 reaches 127.0.0.1, and 6to4 (2002::/16) and NAT64 (64:ff9b::/96)
        # addresses are routed to the IPv4 address they carry: judge that one.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return refusal(embedded)
        if address.is_site_local:  # fec0::/10: deprecated, but still not the internet
            return "site-local"
    checks = (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("private", address.is_private),
        ("reserved", address.is_reserved),
    )
    for why, hit in checks:
        if hit:
            return why
    # What the flags above miss but is still not the public internet (100.64.0.0/10 shared
    # address space, IPv6 site-local fec0::/10, ...).
    return None if address.is_global else "non-public"


@dataclass(frozen=True)
class AllowList:
    """DOSSIER_FETCH_ALLOW: host names, and networks (a bare address is a /32 or /128)."""

    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        hosts: set[str] = set()
        networks: list[IPNetwork] = []
        for entry in (e.strip() for e in entries):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                if "/" in entry or ":" in entry:
                    raise ConfigurationError(
                        f"DOSSIER_FETCH_ALLOW: {entry!r} is neither a host name nor a CIDR "
                        "such as 10.0.0.0/8 or fd00::/8."
                    ) from None
                hosts.add(entry.lower().rstrip("."))
        return cls(frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(
            a in net for a in candidates for net in self.networks if a.version == net.version
        )


def check_address(
    url: str, host: str, address: IPAddress, allow: AllowList, public: bool = True
) -> None:
    """Raise AddressNotAllowed unless ``address`` is public (and ``public`` fetching is on)
    or the allow-list names it."""
    if allow.allows(host, address):
        return
    why = refusal(address)
    if why is not None:
        raise AddressNotAllowed(
            f"{url}: {host} resolves to {address}, a {why} address, which is refused to keep "
            "the server from reaching internal services; if this host is meant to be "
            "fetched, add it (or a CIDR containing the address) to DOSSIER_FETCH_ALLOW.",
            host,
            str(address),
        )
    if not public:
        raise AddressNotAllowed(_only_allowed(url, host), host, str(address))


def _only_allowed(url: str, host: str) -> str:
    return (
        f"{url}: {host} is not in DOSSIER_FETCH_ALLOW, and public addresses are not fetched "
        "(DOSSIER_FETCH_PUBLIC=false); add the host to DOSSIER_FETCH_ALLOW."
    )


def resolve(url: str, host: str, port: int) -> list[IPAddress]:
    """Every address ``host`` resolves to (a literal address is itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise FetchFailed(
            f"{url}: cannot resolve the host {host!r} ({exc}); check the URL."
        ) from exc
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        # A zone index (fe80::1%eth0) is not part of the address being judged.
        addr = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if addr not in found:
            found.append(addr)
    if not found:
        raise FetchFailed(f"{url}: the host {host!r} has no address; check the URL.")
    return found


def canonical_url(url: str) -> str:
    """The URL as documents are keyed by: no fragment, '/' for an empty path.

    The CLI and the API (whose AnyHttpUrl adds the '/') therefore give a page one doc id.
    """
    try:
        parsed = httpx.URL(url.strip())
    except (httpx.InvalidURL, TypeError) as exc:
        raise FetchFailed(f"{url!r} is not a URL ({exc}).") from exc
    if parsed.scheme not in SCHEMES:
        raise FetchFailed(
            f"{url}: only http:// and https:// URLs can be ingested (got {parsed.scheme!r})."
        )
    if not parsed.raw_host:
        raise FetchFailed(f"{url}: the URL has no host.")
    if parsed.userinfo:
        # Credentials would be stored in the document's metadata and shown in citations.
        raise FetchFailed(f"{url}: remove the user name and password from the URL.")
    text = str(parsed.copy_with(fragment=None))
    scheme, rest = text.split("://", 1)
    end = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    if not rest[end:].startswith("/"):  # httpx prints http://host for http://host/
        rest = f"{rest[:end]}/{rest[end:]}"
    return f"{scheme}://{rest}"


# -- fetching ------------------------------------------------------------------
@dataclass(frozen=True)
class Fetched:
    url: str  # as asked for (canonical): the document's id
    final_url: str  # after redirects: where the text was read, the citation's link
    content_type: str
    suffix: str
    data: bytes
    fetched_at: str
    sha256: str


class Fetcher:
    """One httpx client for a batch of URLs; use it as a context manager."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.allow = AllowList.parse(settings.fetch_allow)
        self.client = httpx.Client(
            timeout=httpx.Timeout(settings.fetch_timeout_s),
            # Redirects are followed here, hop by hop, so each target passes the guard.
            follow_redirects=False,
            # No HTTP(S)_PROXY from the environment: a proxy would connect on our behalf
            # to whatever the name resolves to there, defeating the address guard.
            trust_env=False,
            headers={"User-Agent": USER_AGENT},
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.client.close()

    def fetch(self, url: str) -> Fetched:
        """The page at ``url``, or a FetchFailed / AddressNotAllowed / FileTooLarge."""
        asked = canonical_url(url)
        deadline = time.monotonic() + self.settings.fetch_total_timeout_s
        current = asked
        for hop in range(self.settings.fetch_max_redirects + 1):
            try:
                response = self._open(asked, current)
                try:
                    location = response.headers.get("location")
                    if response.status_code in REDIRECT_STATUSES and location:
                        if hop == self.settings.fetch_max_redirects:
                            break
                        current = canonical_url(str(httpx.URL(current).join(location)))
                        log.info("%s: redirected to %s", asked, current)
                        continue
                    return self._page(asked, current, response, deadline)
                finally:
                    response.close()
            except httpx.TimeoutException as exc:
                raise FetchFailed(
                    f"{asked}: {current} did not answer within "
                    f"{self.settings.fetch_timeout_s:g} s ({type(exc).__name__}); raise "
                    "DOSSIER_FETCH_TIMEOUT_S if the site is just slow."
                ) from exc
            except httpx.HTTPError as exc:
                raise FetchFailed(f"{asked}: fetching {current} failed: {exc}.") from exc
        raise FetchFailed(
            f"{asked}: more than {self.settings.fetch_max_redirects} redirects "
            f"(DOSSIER_FETCH_MAX_REDIRECTS); the last pointed to {current}."
        )

    def _open(self, asked: str, current: str) -> httpx.Response:
        """Send a GET for ``current`` to an address that passed the guard; streamed."""
        target = httpx.URL(current)
        host = target.raw_host.decode("ascii")
        port = target.port or SCHEMES[target.scheme]
        public = self.settings.fetch_public
        if not public and not self.allow.networks and host.lower() not in self.allow.hosts:
            # Nothing this name resolves to could pass: refuse without even asking DNS.
            raise AddressNotAllowed(_only_allowed(asked, host), host)
        addresses = resolve(asked, host, port)
        # Every address the name has must pass, not only the first: the resolver's order
        # is not ours to rely on.
        for address in addresses:
            check_address(asked, host, address, self.allow, public)
        # DNS rebinding: a name can resolve to a public address for our check and to
        # 127.0.0.1 a moment later when the HTTP client resolves it again. We therefore
        # connect to the very address we checked (the URL's host replaced by it), and send
        # the real name in the Host header and, for https, as the TLS SNI name, against
        # which the certificate is still verified. Re-checking the peer address after
        # connecting was the alternative; it is weaker, since by then the request has
        # already reached the internal service.
        netloc = target.netloc.decode("ascii")
        extensions = {"sni_hostname": host} if target.scheme == "https" else {}
        for i, address in enumerate(addresses):
            pinned = target.copy_with(host=str(address))
            request = self.client.build_request(
                "GET", pinned, headers={"Host": netloc}, extensions=extensions
            )
            try:
                return self.client.send(request, stream=True)
            except httpx.ConnectError:
                # As a resolver-driven client would: the next checked address (localhost
                # is often ::1 first, and a server may listen on 127.0.0.1 only).
                if i == len(addresses) - 1:
                    raise
                log.info("%s: %s refused the connection; trying the next address", asked, address)
        raise AssertionError("unreachable: resolve() returns at least one address")

    def _page(self, asked: str, final: str, response: httpx.Response, deadline: float) -> Fetched:
        if not response.is_success:
            raise FetchFailed(
                f"{asked}: {final} answered HTTP {response.status_code} "
                f"{response.reason_phrase}; only a page that answers 200 can be ingested."
            )
        raw_type = response.headers.get("content-type", "")
        content_type = raw_type.split(";", 1)[0].strip().lower()
        suffix = CONTENT_TYPES.get(content_type)
        if suffix is None:
            raise FetchFailed(
                f"{asked}: the content type is {content_type or 'missing'!r}; Dossier ingests "
                f"{', '.join(sorted(CONTENT_TYPES))}."
            )
        limit = self.settings.ingest_max_file_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise FileTooLarge(asked, int(declared), limit)
        body = bytearray()
        # iter_bytes decodes gzip/deflate: the limit holds for what we keep, so a small
        # compressed bomb cannot expand past it.
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > limit:
                raise FileTooLarge(asked, len(body), limit)
            if time.monotonic() > deadline:
                raise FetchFailed(
                    f"{asked}: still downloading after {self.settings.fetch_total_timeout_s:g} s "
                    "(DOSSIER_FETCH_TOTAL_TIMEOUT_S)."
                )
        data = bytes(body)
        return Fetched(
            url=asked,
            final_url=final,
            content_type=content_type,
            suffix=suffix,
            data=data,
            fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
            sha256=hashlib.sha256(data).hexdigest(),
        )


# -- keeping and reading -------------------------------------------------------
def url_key(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a reader never sees half a file


def keep(settings: Settings, collection: str, page: Fetched) -> Path:
    """Save the page's bytes and a sidecar; returns the bytes' path."""
    validate_collection_name(collection)  # it names a folder
    folder = settings.fetched_path / collection
    folder.mkdir(parents=True, exist_ok=True)
    key = url_key(page.url)
    path = folder / f"{key}{page.suffix}"
    for stale in folder.glob(f"{key}.*"):  # the page changed type (an .html now a .pdf)
        if stale.suffix not in (page.suffix, ".json"):
            stale.unlink(missing_ok=True)
    _write_atomic(path, page.data)
    sidecar = {
        "url": page.url,
        "final_url": page.final_url,
        "content_type": page.content_type,
        "fetched_at": page.fetched_at,
        "sha256": page.sha256,
        "file": path.name,
    }
    _write_atomic(folder / f"{key}.json", json.dumps(sidecar, indent=2).encode("utf-8"))
    return path


def reader_name(page: Fetched) -> str:
    """A name for ``parse`` that reads like the URL and ends in the type's suffix."""
    return page.url if page.url.lower().endswith(page.suffix) else page.url + page.suffix


def url_documents(
    settings: Settings,
    ingestor: Ingestor,
    collection: str,
    urls: Sequence[str],
    report: IngestReport,
    progress: Callable[[int], None] | None = None,
) -> list[Document]:
    """Fetch, keep and read each URL; a failure goes to ``report.failed`` (a page too large
    or without text to ``report.skipped``), and the rest go on."""
    validate_collection_name(collection)
    docs: list[Document] = []
    seen: set[str] = set()
    with Fetcher(settings) as fetcher:
        for url in urls:
            try:
                asked = canonical_url(url)
                if asked in seen:
                    continue
                seen.add(asked)
                page = fetcher.fetch(asked)
                keep(settings, collection, page)
                raw = parse(reader_name(page), page.data, settings.ingest_max_file_bytes)
                if not raw.meta.get("url"):
                    raw.meta["url"] = page.final_url  # so citations link to the page
                docs.append(ingestor.document(collection, asked, raw))
            except NotIndexed as exc:  # too large, or a scan: passed over, as files are
                log.warning("skipped %s: %s", url, exc)
                report.skipped.append((url, str(exc)))
            except DossierError as exc:
                log.warning("failed %s: %s", url, exc)
                report.failed.append((url, str(exc)))
            finally:
                if progress is not None:
                    progress(1)
    return docs


def read_urls_file(path: Path) -> list[str]:
    """One URL a line; blank lines and ``#`` comments are ignored."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise FetchFailed(f"{path}: cannot read the URL list ({exc}).") from exc
    urls: list[str] = []
    for line in lines:
        # "#" starts a comment at the line's start or after a space; inside a URL it is
        # a fragment and stays.
        url = line.strip().split(" #", 1)[0].strip()
        if url and not url.startswith("#"):
            urls.append(url)
    return urls
