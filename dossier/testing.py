"""Helpers for tests and benchmarks that run real servers on loopback.

They live in the package (not in ``tests/``) so benchmarks and other projects' tests can
use them without importing a test suite. uvicorn and httpx are imported only when used.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from dossier.settings import Settings


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_settings(data_dir: Path, corpus_dir: Path | None = None, **overrides: Any) -> Settings:
    """Settings that ignore any .env file, with the index under ``data_dir / "index"``."""
    if corpus_dir is not None:
        overrides["corpus_dir"] = corpus_dir
    return Settings(_env_file=None, data_dir=data_dir / "index", **overrides)  # type: ignore[call-arg]


def wait_for_http(url: str, proc: subprocess.Popen[Any], timeout: float = 60) -> bool:
    """Poll ``url`` until it answers 2xx; False once ``proc`` has exited or time is up."""
    import httpx

    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=1).is_success:
                return True
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            return False
        time.sleep(0.1)


class LiveServer:
    """uvicorn serving an ASGI app on a free loopback port, in a thread."""

    def __init__(self, app: object, **config: Any) -> None:
        import uvicorn

        self.port = free_port()
        cfg = uvicorn.Config(
            app,  # type: ignore[arg-type]
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            **config,
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
