"""API keys over a real loopback server: the auth matrix, scope, revocation, defaults."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from dossier.errors import ConfigurationError
from dossier.testing import LiveServer
from service.app import create_app
from service.keys import KEYS_FILE, KeyStore
from tests.conftest import alpha_beta_engine, make_settings


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, module_state_url: str | None
) -> Iterator[dict[str, Any]]:
    """Keys kept by each state backend (SQLite, PostgreSQL): the matrix holds for both."""
    tmp = tmp_path_factory.mktemp("auth")
    engine = alpha_beta_engine(tmp, auth=True, state_url=module_state_url)
    settings = engine.settings
    keys = KeyStore(settings.data_dir / KEYS_FILE, settings.state_url)
    tokens = {
        "read_a": keys.create("reader", "alpha", "read")[1],
        "write_a": keys.create("writer", "alpha", "write")[1],
        "admin": keys.create("curator", "*", "admin")[1],
    }
    revoked, tokens["revoked"] = keys.create("old", "*", "admin")
    keys.revoke(revoked.id)
    right_id = tokens["read_a"].rsplit("_", 1)[0]
    tokens["wrong"] = "dsk_000000000000_" + "x" * 43
    tokens["right_prefix"] = right_id + "_" + "y" * 43
    with LiveServer(create_app(settings, engine)) as live:
        yield {"url": live.url, "tokens": tokens}


DOC = {"documents": [{"id": "n1", "title": "New", "text": "A new alpha article arrived."}]}

# (who, method, path, json body, expected status)
MATRIX = [
    (None, "get", "/v1/collections", None, 401),
    (None, "get", "/healthz", None, 200),
    ("wrong", "get", "/v1/collections", None, 401),
    ("right_prefix", "get", "/v1/collections", None, 401),
    ("revoked", "get", "/v1/collections", None, 401),
    ("read_a", "get", "/v1/search?q=harbour&collection=alpha", None, 200),
    ("read_a", "get", "/v1/search?q=railway&collection=beta", None, 404),
    ("read_a", "get", "/v1/search?q=x&collection=gamma", None, 404),
    ("read_a", "post", "/v1/ask", {"question": "What reopened?"}, 200),
    ("read_a", "post", "/v1/ask", {"question": "What ended?", "collection": "beta"}, 404),
    ("read_a", "get", "/v1/documents?collection=beta", None, 404),
    ("read_a", "post", "/v1/collections/alpha/documents", DOC, 403),
    ("read_a", "post", "/v1/collections/beta/documents", DOC, 404),
    ("read_a", "get", "/v1/feedback", None, 403),
    ("write_a", "post", "/v1/collections/alpha/documents", DOC, 200),
    ("write_a", "post", "/v1/collections/beta/documents", DOC, 404),
    ("write_a", "get", "/v1/feedback", None, 403),
    ("admin", "get", "/v1/feedback", None, 200),
    ("admin", "get", "/v1/search?q=railway&collection=beta", None, 200),
    ("admin", "post", "/v1/collections/beta/documents", DOC, 200),
]


@pytest.mark.parametrize(("who", "method", "path", "body", "status"), MATRIX)
def test_auth_matrix(
    server: dict[str, Any], who: str | None, method: str, path: str, body: Any, status: int
) -> None:
    headers = {"Authorization": f"Bearer {server['tokens'][who]}"} if who else {}
    r = httpx.request(method, server["url"] + path, json=body, headers=headers, timeout=30)
    assert r.status_code == status, r.text
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"
        assert "dsk_" not in r.text.replace("Bearer <key>", "")
    if status >= 400:
        assert set(r.json()["error"]) == {"type", "message"}


def test_out_of_scope_looks_like_unknown(server: dict[str, Any]) -> None:
    headers = {"Authorization": f"Bearer {server['tokens']['read_a']}"}

    def get(collection: str) -> httpx.Response:
        return httpx.get(
            server["url"] + "/v1/documents", params={"collection": collection}, headers=headers
        )

    exists, missing = get("beta").json()["error"], get("gamma").json()["error"]
    assert exists["type"] == missing["type"] == "collection_not_found"
    assert exists["message"].replace("beta", "X") == missing["message"].replace("gamma", "X")
    cols = httpx.get(server["url"] + "/v1/collections", headers=headers).json()
    assert [c["name"] for c in cols] == ["alpha"]


def test_auth_defaults_follow_the_bind_address(tmp_path: Path) -> None:
    loopback = create_app(make_settings(tmp_path, embedder="hashing"))
    assert loopback.state.auth_required is False
    public = create_app(make_settings(tmp_path, embedder="hashing", host="0.0.0.0"))
    assert public.state.auth_required is True
    forced = create_app(make_settings(tmp_path, embedder="hashing", auth=True))
    assert forced.state.auth_required is True
    with pytest.raises(ConfigurationError, match="loopback"):
        create_app(make_settings(tmp_path, embedder="hashing", host="0.0.0.0", auth=False))


def test_keys_cli_creates_lists_and_revokes(tmp_path: Path) -> None:
    env = {**os.environ, "DOSSIER_DATA_DIR": str(tmp_path / "index")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "service.cli", "keys", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    made = cli("create", "--name", "app", "--collections", "a-1,b-2", "--role", "write")
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("dsk_") and len(token) > 50
    assert "not shown again" in made.stderr
    # The secret is URL-safe base64, which may itself hold "_": split off the id only.
    key_id, secret = token.removeprefix("dsk_").split("_", 1)
    listed = cli("list").stdout
    assert "app  write  a-1,b-2" in listed and secret not in listed
    stored = (tmp_path / "index" / KEYS_FILE).read_bytes()
    assert secret.encode() not in stored  # only the hash is kept
    assert cli("revoke", key_id).returncode == 0
    assert "revoked" in cli("list").stdout
    bad = cli("create", "--name", "x", "--collections", "a", "--role", "owner")
    assert bad.returncode == 2 and "role" in bad.stderr


@pytest.mark.parametrize("host, auth", [("127.0.0.1", None), ("0.0.0.0", None), ("::1", True)])
def test_the_published_schema_says_whether_a_key_is_required(
    tmp_path: Path, host: str, auth: bool | None
) -> None:
    settings = make_settings(tmp_path, embedder="hashing", host=host, auth=auth)
    app = create_app(settings)
    schema = TestClient(app).get("/openapi.json").json()
    assert schema == app.openapi()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    operations = {
        (method, path): op for path, ops in schema["paths"].items() for method, op in ops.items()
    }
    v1 = {k: op for k, op in operations.items() if k[1].startswith("/v1/")}
    assert len(v1) > 10
    # Required: a Bearer key on every /v1 route. Not required (loopback without keys):
    # no key, or a key (still checked when sent).
    expected: list[dict[str, list[str]]] = (
        [{"HTTPBearer": []}] if settings.auth_required else [{}, {"HTTPBearer": []}]
    )
    assert {k: op.get("security") for k, op in v1.items()} == {k: expected for k in v1}
    assert "security" not in operations[("get", "/healthz")]
