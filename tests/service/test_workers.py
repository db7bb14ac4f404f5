"""``facelens serve --gallery postgresql://... --workers 2``: real worker processes sharing one
PostgreSQL gallery answer exactly as one process does, and see each other's writes at once."""

from __future__ import annotations

import concurrent.futures as cf
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from facelens import Gallery, Pipeline
from facelens.gallery.stores import open_store
from facelens.govern import KeyStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def two_workers(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, str]]:
    store = open_store(pg_url)
    _, secret = KeyStore(store).create("acme", ["admin"], "test")
    store.close()
    port = free_port()
    exe = Path(sys.executable).with_name("facelens")
    log = tmp_path / "serve.log"
    out = log.open("wb")
    proc = subprocess.Popen(
        [
            str(exe),
            "serve",
            "--gallery",
            pg_url,
            "--port",
            str(port),
            "--workers",
            "2",
            "--identify-rate",
            "1000",
        ],
        stdout=out,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 90
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/v1/health", timeout=30).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.3)
        assert proc.poll() is None, log.read_text()
    else:
        pytest.fail("the service did not start")
    yield url, secret
    proc.terminate()
    proc.wait(30)
    out.close()


def test_two_workers_answer_as_one_and_see_each_others_writes(
    two_workers: tuple[str, str], pg_url: str, data: Path, pipeline: Pipeline
) -> None:
    url, secret = two_workers
    knn = data / "faces" / "face_recognition" / "knn_examples"
    probe = (knn / "test" / "obama1.jpg").read_bytes()
    h = {"Authorization": f"Bearer {secret}"}
    with httpx.Client(base_url=url, headers=h, timeout=120) as c:
        # a new connection each time (a kept-alive one always reaches the same process)
        health = [httpx.get(f"{url}/v1/health", timeout=60).json() for _ in range(40)]
        workers = {h["worker"] for h in health}
        assert {h["store"] for h in health} == {"postgresql"}
        assert len(workers) == 2, "both worker processes should answer"
        assert c.post("/v1/galleries", json={"name": "office"}).status_code == 201
        for person in ("obama", "biden"):
            r = c.post(
                "/v1/galleries/office/identities",
                data={"name": person, "consent_purpose": "door", "consent_granted_by": person},
                files=[
                    ("images", (p.name, p.read_bytes(), "image/jpeg"))
                    for p in sorted((knn / "train" / person).iterdir())
                ],
            )
            assert r.status_code == 201, r.text

        served_by: set[str] = set()

        def identify(_: int) -> tuple[str | None, float]:
            with httpx.Client(base_url=url, headers=h, timeout=120) as one:  # own connection
                r = one.post("/v1/galleries/office/identify", files={"image": ("p.jpg", probe)})
            assert r.status_code == 200, r.text
            served_by.add(r.headers["X-Facelens-Worker"])
            face = r.json()["faces"][0]
            return (face["identity"] or {}).get("name"), face["candidates"][0]["score"]

        with cf.ThreadPoolExecutor(8) as ex:
            answers = set(ex.map(identify, range(24)))
        assert len(served_by) == 2 and len(answers) == 1  # both workers, one same answer
        ((name, score),) = answers
        # ... which is the one a single process computes on the same gallery
        g = Gallery.open(pg_url, tenant="acme", name="office")
        image, _ = pipeline.decode(knn / "test" / "obama1.jpg")
        embeddings = pipeline.analyze(image).embeddings
        assert embeddings is not None
        ref = g.identify(embeddings)[0]
        assert ref.identity is not None and name == ref.identity.name == "obama"
        assert score == pytest.approx(ref.candidates[0].score, abs=0.006)
        # an erasure through one worker is seen by the other at once
        oid = ref.identity.identity_id
        assert c.delete(f"/v1/galleries/office/identities/{oid}").status_code in (200, 204)
        with cf.ThreadPoolExecutor(8) as ex:
            after = set(ex.map(identify, range(16)))
        assert all(n != "obama" for n, _ in after)
        g.close()
