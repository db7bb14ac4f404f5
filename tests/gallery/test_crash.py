"""A process killed with SIGKILL in the middle of an enrolment leaves no half-written identity."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from facelens.gallery.gallery import RawGallery


def _images(data: Path, n: int) -> list[Path]:
    folder = data / "lfw" / "images" / "George_W_Bush"
    return sorted(folder.iterdir())[:n]


@pytest.fixture(scope="module")
def complete_enrolment(data: Path, tmp_path_factory: pytest.TempPathFactory) -> int:
    """How many samples the 50-image enrolment stores when nothing interrupts it."""
    g = tmp_path_factory.mktemp("complete") / "g.db"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelens",
            "enroll",
            "George W Bush",
            *map(str, _images(data, 50)),
            "--consent",
            "test",
            "--gallery",
            str(g),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    n = int(json.loads(proc.stdout)["added"])
    assert 40 <= n <= 50
    return n


# Killed while images are processed (10, 25, 45), and once all 50 are processed, racing the
# single write transaction (50).
@pytest.mark.parametrize("kill_after", [10, 25, 45, 50])
def test_sigkill_during_a_50_image_enrolment(
    tmp_path: Path, data: Path, kill_after: int, complete_enrolment: int
) -> None:
    g = tmp_path / "g.db"
    # Someone already enrolled, whose data must survive the crash untouched.
    first = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelens",
            "enroll",
            "Colin Powell",
            *(str(p) for p in sorted((data / "lfw" / "images" / "Colin_Powell").iterdir())[:4]),
            "--consent",
            "test",
            "--gallery",
            str(g),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    with RawGallery.open(g) as gallery:
        before = gallery.get("Colin Powell", by="name").sample_count
    assert before == 4

    images = _images(data, 50)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "facelens",
            "enroll",
            "George W Bush",
            *map(str, images),
            "--consent",
            "test",
            "--gallery",
            str(g),
            "--progress",
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 120
    for line in proc.stderr:
        if line.startswith(f"enroll: {kill_after}/"):
            break
        assert time.monotonic() < deadline
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL

    with RawGallery.open(g) as gallery:
        assert gallery.store.integrity_check() == []
        names = {i.name: i for i in gallery.identities()}
        assert names["Colin Powell"].sample_count == before
        if kill_after < 50:
            assert "George W Bush" not in names  # nothing of the interrupted enrolment
        elif "George W Bush" in names:
            # killed while writing: the commit either happened whole or not at all
            assert names["George W Bush"].sample_count == complete_enrolment
    con = sqlite3.connect(g)
    orphans = con.execute(
        "SELECT count(*) FROM samples WHERE identity_id NOT IN (SELECT id FROM identities)"
    ).fetchone()[0]
    con.close()
    assert orphans == 0
    # and the gallery still takes the same enrolment afterwards
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "facelens",
            "enroll",
            "George W Bush",
            *map(str, images[:3]),
            "--consent",
            "test",
            "--gallery",
            str(g),
            "--json",
        ],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr


# -- import and index rebuilds, with the audit chain being written -----------------------------

# A child process that keeps a gallery busy the way a service does: identities enrolled
# and imported, erasures, searches that keep (and save, and rebuild) its HNSW index in step,
# an audit record for each - until it is killed.
BUSY = r"""
import sys, numpy as np
from facelens import Embeddings
from facelens.gallery.gallery import RawGallery
from facelens.gallery import AnnConfig, Consent, NewSample, SqliteStore
from facelens.gallery.records import Identity, Sample
from facelens.govern import AuditLog

NOW = "2026-01-01T00:00:00+00:00"
store = SqliteStore(sys.argv[1], ann=AnnConfig(min_samples=400, m=16, save_every=1))
g, audit = RawGallery(store), AuditLog(store)
rng = np.random.default_rng(int(sys.argv[2]))
c = Consent(purpose="p", granted_by="x", granted_at=NOW)
def unit(n):
    v = rng.normal(size=(n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)
run = sys.argv[2]  # each run's ids are its own
for round in range(10**6):
    base = round * 300
    items = []
    for j, e in enumerate(unit(300), base):
        ident = Identity(f"id{run}-{j:07d}", "default", f"P{run}-{j:07d}", {}, NOW, NOW, 1, (c,))
        sample = Sample(f"s{run}-{j:07d}", ident.id, "m", e, {}, f"{run}{j:063x}", None, NOW)
        items.append((ident, [sample]))
    store.import_identities("default", items)
    audit.append(tenant="t", key_id="k", action="import", decision={"n": 300})
    for j in range(base, base + 120):  # erasures: the graph fills with dead entries
        store.delete("default", f"id{run}-{j:07d}")
        audit.append(tenant="t", key_id="k", action="delete", candidates=[f"id{run}-{j:07d}"])
    g.enroll(f"E{run}-{round}", [NewSample(unit(1)[0], "m", {}, f"{run}{round:063x}e")], c)
    g.search(Embeddings(unit(4), "m"), k=3)
    audit.append(tenant="t", key_id="k", action="identify")
    print(round, flush=True)
"""


def _audit_verify(store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "facelens", "audit", "verify", "--gallery", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("kill_at_s", [1.5, 3.0, 4.5])
def test_sigkill_during_imports_erasures_and_index_rebuilds(
    tmp_path: Path, kill_at_s: float
) -> None:
    import numpy as np

    from facelens.gallery import AnnConfig, SqliteStore

    path = tmp_path / "g.db"
    for attempt in range(2):  # killed twice: the second run starts from the first's wreck
        proc = subprocess.Popen(
            [sys.executable, "-c", BUSY, str(path), str(attempt)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "0", proc.stderr.read() if proc.stderr else ""
        time.sleep(kill_at_s)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()  # type: ignore[union-attr]
        assert proc.returncode == -signal.SIGKILL

    assert (tmp_path / "g.db.ann").is_dir()  # an index was being built and saved meanwhile
    # the audit chain is whole: every record that was committed links to the one before
    verified = _audit_verify(path)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["ok"] is True
    store = SqliteStore(path, ann=AnnConfig(min_samples=400, m=16))
    try:
        assert store.integrity_check() == []
        con = sqlite3.connect(path)
        half = con.execute(
            "SELECT count(*) FROM identities i WHERE NOT EXISTS "
            "(SELECT 1 FROM samples s WHERE s.identity_id = i.id) "
            "OR NOT EXISTS (SELECT 1 FROM consents c WHERE c.identity_id = i.id)"
        ).fetchone()[0]
        orphans = con.execute(
            "SELECT count(*) FROM samples WHERE identity_id NOT IN (SELECT id FROM identities)"
        ).fetchone()[0]
        con.close()
        assert (half, orphans) == (0, 0)
        # whatever index file the crash left, searches agree with an exact search
        rows = store.fetch("SELECT identity_id, id FROM samples")
        assert len(rows) >= 400
        # the samples' templates as the model made them (the gallery stores them transformed)
        probes = np.stack(
            [next(s.embedding for s in store.samples(r[0]) if s.id == r[1]) for r in rows[-20:]]
        )
        found = store.search("default", "m", probes, 1)
        assert [f[0].identity_id for f in found] == [r[0] for r in rows[-20:]]
    finally:
        store.close()
