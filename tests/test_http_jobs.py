"""Ingestion jobs kept in the state database (SQLite file, PostgreSQL): read and cancelled
from another app instance (another host), failed with the reason after their host died,
and finished by re-posting the batch, which embeds only what is missing."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from dossier.engine import Dossier
from dossier.testing import LiveServer
from ingest.loaders import RawArticle
from ingest.pipeline import Ingestor, IngestReport
from service.app import create_app
from service.ingestion import Ingestion
from service.jobs import JOBS_FILE, ORPHANED, SHUT_DOWN, JobStore
from tests.conftest import ROOT, make_settings

COLLECTION = "wire"


def _docs(n: int, start: int = 0) -> list[dict[str, Any]]:
    # Short and distinct: one passage each, so chunks embedded count documents.
    return [
        {
            "id": f"d{i}",
            "title": f"Report {i}",
            "text": f"The harbour of town {i} reopened on day {i} after {i + 2} storms.",
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def hosts(tmp_path: Path, state_url: str | None) -> Iterator[dict[str, Any]]:
    """Two app instances (two hosts) on one state database and one index."""
    settings = make_settings(
        tmp_path,
        embedder="hashing",
        ingest_sync_max_documents=2,
        ingest_job_heartbeat_s=0.1,  # the worker reads cancel requests with its heartbeat
        state_url=state_url,
    )
    engine = Dossier(settings)
    with ExitStack() as stack:
        apps = [create_app(settings, engine) for _ in range(2)]
        clients = []
        for app in apps:
            live = stack.enter_context(LiveServer(app))
            clients.append(stack.enter_context(httpx.Client(base_url=live.url, timeout=60)))
        yield {
            "apps": apps,
            "clients": clients,
            "settings": settings,
            "engine": engine,
            "state_url": state_url,
        }


def _wait(client: httpx.Client, job_id: str, until: tuple[str, ...]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        job: dict[str, Any] = r.json()
        if job["status"] in until:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {until}")


def _post(client: httpx.Client, docs: list[dict[str, Any]]) -> httpx.Response:
    return client.post(f"/v1/collections/{COLLECTION}/documents", json={"documents": docs})


def test_another_host_reads_and_cancels_jobs(hosts: dict[str, Any]) -> None:
    one, two = hosts["clients"]
    ing: Ingestion = hosts["apps"][0].state.ingestion
    docs = _docs(6)
    # Holding host 1's write lock keeps its job running but short of its first group.
    with ing.lock:
        r = _post(one, docs)
        assert r.status_code == 202, r.text
        running = r.json()
        assert r.headers["location"] == f"/v1/jobs/{running['id']}"
        assert running["host"] == str(ing.host) and running["chunks_embedded"] == 0
        seen = _wait(two, running["id"], ("running",))
        assert seen["started"] and seen["total"] == 6
        queued = _post(one, _docs(3, start=10)).json()
        assert two.get(f"/v1/jobs/{queued['id']}").json()["status"] == "queued"

        gone = two.delete(f"/v1/jobs/{queued['id']}")
        assert gone.status_code == 200 and gone.json()["status"] == "cancelled"
        asked = two.delete(f"/v1/jobs/{running['id']}")
        assert asked.status_code == 202, asked.text
        assert asked.json()["status"] == "running" and asked.json()["cancel_requested"]
        # Host 1 hears of it with its next heartbeat, while still waiting for the lock.
        deadline = time.monotonic() + 10
        while not ing.stop_requested(running["id"]):
            assert time.monotonic() < deadline, "the heartbeat never read the cancel"
            time.sleep(0.02)
    # It stops before its first group.
    stopped = _wait(one, running["id"], ("done", "failed", "cancelled"))
    assert stopped["status"] == "cancelled" and stopped["error"] is None
    assert stopped["result"]["added"] == 0 and stopped["finished"]
    assert _wait(one, queued["id"], ("cancelled",))["started"] is None  # it never ran

    finished = two.delete(f"/v1/jobs/{running['id']}")
    assert finished.status_code == 409 and finished.json()["error"]["type"] == "job_finished"
    for client in (one, two):
        unknown = client.delete("/v1/jobs/" + "0" * 32)
        assert unknown.status_code == 404 and unknown.json()["error"]["type"] == "job_not_found"
        assert client.get("/v1/jobs/" + "0" * 32).status_code == 404

    # Posted again (to host 2 this time), the batch runs to the end.
    again = _post(two, docs).json()
    done = _wait(one, again["id"], ("done", "failed", "cancelled"))
    assert (done["status"], done["processed"], done["eta_s"]) == ("done", 6, 0)
    assert done["chunks_embedded"] == done["result"]["chunks_embedded"] == 6


def test_a_restart_fails_the_dead_hosts_job_and_a_repost_embeds_the_rest(
    hosts: dict[str, Any],
) -> None:
    one, _ = hosts["clients"]
    settings = hosts["settings"]
    docs = _docs(6)
    # A host committed two of the documents, then died with its job running: a real
    # process that stored the job's row, started it, and exited without a word.
    first = _post(one, docs[:2]).json()
    assert (first["added"], first["chunks_embedded"]) == (2, 2)
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from service.jobs import HostId, JobStore\n"
        "store = JobStore(Path(sys.argv[1]), sys.argv[2] or None)\n"
        "host = str(HostId())\n"
        "long_ago = time.time() - 3600\n"  # its last heartbeat, long before the restart
        f"job = store.create({COLLECTION!r}, 6, host, now=long_ago)\n"
        "store.start(job.id, host, now=long_ago)\n"
        "store.progress(job.id, host, 2, 2)\n"
        "print(job.id)\n"
    )
    dead = subprocess.run(
        [sys.executable, "-c", script, str(settings.data_dir / JOBS_FILE),
         hosts["state_url"] or ""],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    orphan = dead.stdout.strip()

    # The heartbeat it wrote with its progress is recent: SQLite (one machine) sees that the
    # process is gone; PostgreSQL hosts see only the heartbeat, so it is made to stop coming.
    if hosts["state_url"] is not None:
        with JobStore(settings.data_dir / JOBS_FILE, hosts["state_url"]).db.transaction() as tx:
            tx.execute(
                "UPDATE ingest_jobs SET heartbeat = ? WHERE id = ?", (time.time() - 60, orphan)
            )
    restarted = create_app(settings, hosts["engine"])  # its start-up sweeps orphans
    with restarted.state.ingestion.jobs.db.transaction(write=False) as tx:
        row = tx.execute("SELECT status, error FROM ingest_jobs WHERE id = ?", (orphan,))
        assert tuple(row.fetchone()) == ("failed", ORPHANED)
    restarted.state.ingestion.shutdown()
    job = one.get(f"/v1/jobs/{orphan}").json()
    assert (job["status"], job["error"], job["processed"]) == ("failed", ORPHANED, 2)
    assert job["finished"] and job["eta_s"] is None
    assert one.delete(f"/v1/jobs/{orphan}").status_code == 409

    # Re-posting the batch, as the reason says, embeds only the four it was missing.
    again = _post(one, docs)
    assert again.status_code == 202, again.text
    done = _wait(one, again.json()["id"], ("done", "failed", "cancelled"))
    assert done["status"] == "done", done
    assert (done["result"]["added"], done["result"]["unchanged"]) == (4, 2)
    assert done["chunks_embedded"] == 4


def test_a_stopped_upsert_keeps_the_groups_it_committed(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, embedder="hashing", ingest_group_chunks=1)
    engine = Dossier(settings)
    ingestor = Ingestor(settings, engine.store, engine.embedder)
    docs = [
        ingestor.document(
            COLLECTION, d["id"], RawArticle(Path(d["id"]), d["text"], d["title"], meta={})
        )
        for d in _docs(5)
    ]
    asked: list[int] = []

    def after_two_groups() -> bool:
        asked.append(1)
        return len(asked) > 2

    report = ingestor.upsert(COLLECTION, docs, should_stop=after_two_groups)
    assert report.cancelled and (report.added, report.chunks_embedded) == (2, 2)
    assert len(engine.store.documents(COLLECTION)) == 2
    assert engine.search("harbour town", COLLECTION)  # published: the BM25 side too
    rest = ingestor.upsert(COLLECTION, docs, IngestReport(collection=COLLECTION))
    assert (rest.added, rest.unchanged, rest.chunks_embedded) == (3, 2, 3)


def test_a_host_shutting_down_fails_its_jobs_with_the_reason(hosts: dict[str, Any]) -> None:
    one, two = hosts["clients"]
    ing: Ingestion = hosts["apps"][0].state.ingestion
    with ing.lock:
        running = _post(one, _docs(4)).json()
        _wait(two, running["id"], ("running",))
        queued = _post(one, _docs(3, start=10)).json()
        ing.shutdown()  # what the app's lifespan does when the server stops
        waiting = two.get(f"/v1/jobs/{queued['id']}").json()
        assert (waiting["status"], waiting["error"]) == ("failed", SHUT_DOWN)
    stopped = _wait(two, running["id"], ("done", "failed", "cancelled"))
    assert (stopped["status"], stopped["error"]) == ("failed", SHUT_DOWN)
