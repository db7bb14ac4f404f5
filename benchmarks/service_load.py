"""Verify and identify latency and throughput of the service under load (locust, 60 s each).

    .venv/bin/python benchmarks/service_load.py [--write docs/benchmarks.md] [--seconds 60]

Starts ``facelens serve`` (one uvicorn worker) on a fresh SQLite gallery on this machine,
enrols 20 LFW people (2 photos each) through the API, then drives it with locust (headless,
same machine, so the load generator shares the 2 cores with the server):

- verify: 20 users, one request per second each (20 req/s), random genuine LFW pairs
  (250x250 JPEGs, both images uploaded on every request);
- identify: 20 users at one request per second (20 req/s), probes of the enrolled people and
  of people not enrolled, against a gallery of 10,000 identities: the 20 people enrolled
  through the API and 9,980 synthetic ones (each a blend of two real LFW embeddings of
  other people, with noise: as close to real faces as real strangers are), imported into the
  store before the service starts;
- first, verify requests one at a time (the latency floor);
- then verify and identify at 10 and 5 req/s, to see the latency with less queueing.

The service embeds concurrent requests' faces together in one call (its inference queue,
``facelens.service.inference``); the queue's batch statistics are read from the server's
health document at the end.

Latency is locust's (request sent -> response read); errors are any non-2xx answer.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _report import ROOT, data_root, machine, md_table, write_section
from facelens.eval.lfw import lfw_image, read_people

VENV_BIN = Path(sys.executable).parent


def wait_up(url: str, timeout: float = 60) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            urllib.request.urlopen(url + "/v1/health", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise SystemExit("the service did not start")


def sequential_verify(url: str, key: str, load: Path, n: int = 30) -> dict[str, float]:
    """Verify requests one at a time, with nothing else running: the floor under any load."""
    import httpx

    pairs = sorted(load.glob("a_*.jpg"))
    ms = []
    with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:
        for i in range(n + 3):
            a = pairs[i % len(pairs)]
            b = a.with_name("b_" + a.name[2:])
            t0 = time.perf_counter()
            r = c.post(
                url + "/v1/verify",
                files={
                    "image_a": (a.name, a.read_bytes(), "image/jpeg"),
                    "image_b": (b.name, b.read_bytes(), "image/jpeg"),
                },
            )
            if r.status_code != 200:
                raise SystemExit(f"verify failed: {r.status_code} {r.text[:200]}")
            if i >= 3:  # the first requests load the models
                ms.append((time.perf_counter() - t0) * 1000)
    ms.sort()
    return {"n": n, "p50": ms[len(ms) // 2], "max": ms[-1]}


def api(
    url: str, key: str, path: str, fields: dict[str, str], files: list[tuple[str, Path]]
) -> None:
    import httpx

    r = httpx.post(
        url + path,
        data=fields,
        files=[(k, (p.name, p.read_bytes(), "image/jpeg")) for k, p in files],
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    if r.status_code >= 300:
        raise SystemExit(f"{path}: {r.status_code} {r.text}")


SYNTHETIC = 9_980


def synthetic_gallery(path: Path, lfw: Path, people: dict[str, list[int]], skip: set[str]) -> None:
    """9,980 identities made from real embeddings of LFW people outside the load set, in the
    bootstrap tenant's gallery ``default``, tagged with the default model."""
    import numpy as np

    from facelens import Pipeline
    from facelens.gallery import Consent, Identity, Sample, SqliteStore

    p = Pipeline()
    others = sorted(n for n in people if n not in skip)[:400]
    real = []
    for name in others:
        img, _ = p.decode(lfw_image(lfw, name, sorted(people[name])[0]))
        e = p.primary_embedding(img)
        if e is not None:
            real.append(e.vectors[0])
    base = np.array(real, np.float64)
    rng = np.random.default_rng(15)
    i, j = rng.integers(0, len(base), (2, SYNTHETIC))
    a = rng.uniform(0.3, 0.7, (SYNTHETIC, 1))
    v = a * base[i] + (1 - a) * base[j] + rng.normal(0, 0.02, (SYNTHETIC, base.shape[1]))
    v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
    now = "2026-01-01T00:00:00+00:00"
    c = Consent(purpose="benchmark", granted_by="synthetic", granted_at=now)
    items = []
    for k in range(SYNTHETIC):
        ident = Identity(
            f"syn{k:06d}", "default/default", f"Synthetic {k:05d}", {}, now, now, 1, (c,)
        )
        items.append(
            (ident, [Sample(f"s{k:06d}", ident.id, p.model, v[k], {}, f"{k:064x}", None, now)])
        )
    store = SqliteStore(path)
    store.ensure_gallery("default/default")
    store.import_identities("default/default", items)
    store.close()


def run_locust(
    url: str, key: str, load: Path, route: str, users: int, seconds: int, out: Path
) -> dict[str, str]:
    env = dict(
        os.environ,
        FACELENS_KEY=key,
        FACELENS_LOAD_DIR=str(load),
        FACELENS_LOAD_ROUTE=route,
        FACELENS_LOAD_RATE="1",
    )
    prefix = out / route
    subprocess.run(
        [
            str(VENV_BIN / "locust"),
            "-f",
            str(ROOT / "benchmarks" / "locustfile.py"),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "--run-time",
            f"{seconds}s",
            "--host",
            url,
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        check=False,
        cwd=out,
    )
    with open(f"{prefix}_stats.csv") as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    return rows[route]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path)
    ap.add_argument("--seconds", type=int, default=60)
    args = ap.parse_args()
    lfw = data_root() / "lfw"
    people = read_people(lfw)
    many = sorted(n for n, idx in people.items() if len(idx) >= 4)[:40]
    enrolled = many[:20]  # the other 20 are strangers: their probes are in the load set too
    tmp = Path(tempfile.mkdtemp())
    load = tmp / "load"
    load.mkdir()
    for n, name in enumerate(many):
        idx = sorted(people[name])
        shutil.copy(lfw_image(lfw, name, idx[2]), load / f"a_{n:03d}.jpg")
        shutil.copy(lfw_image(lfw, name, idx[3]), load / f"b_{n:03d}.jpg")
        shutil.copy(lfw_image(lfw, name, idx[3]), load / f"probe_{n:03d}.jpg")

    synthetic_gallery(tmp / "g.db", lfw, people, set(many))
    port = 18765
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [
            str(VENV_BIN / "facelens"),
            "serve",
            "--gallery",
            str(tmp / "g.db"),
            "--port",
            str(port),
            "--bootstrap-key",
            "--identify-rate",
            "1000",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stderr is not None
        key = ""
        while not key:
            line = server.stderr.readline()
            if not line:
                raise SystemExit("the service exited before printing its key")
            if line.strip().startswith("fl_"):
                key = line.strip()
        # keep reading the server's log, so a full pipe never blocks it
        threading.Thread(target=server.stderr.read, daemon=True).start()
        wait_up(url)
        for name in enrolled:
            idx = sorted(people[name])
            api(
                url,
                key,
                "/v1/galleries/default/identities",
                {"name": name, "consent_purpose": "benchmark", "consent_granted_by": "benchmark"},
                [("images", lfw_image(lfw, name, i)) for i in idx[:2]],
            )
        alone = sequential_verify(url, key, load)
        print("one verify at a time:", alone, flush=True)
        results = []
        # the goal's load, then a load this machine sustains (to see latency without a queue)
        for route, users in (
            ("verify", 20),
            ("verify", 10),
            ("verify", 5),
            ("identify", 20),
            ("identify", 10),
            ("identify", 5),
        ):
            r = run_locust(url, key, load, route, users, args.seconds, tmp)
            results.append((route, users, r))
            print(
                route,
                {k: r[k] for k in ("Request Count", "Failure Count", "50%", "99%", "Requests/s")},
                flush=True,
            )
        import httpx

        queue = httpx.get(url + "/v1/health", timeout=60).json()["queue"]
        print("inference queue:", queue, flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    rows = [
        [
            route,
            f"{users} req/s offered",
            r["Request Count"],
            r["Failure Count"],
            f"{float(r['Requests/s']):.1f}",
            r["50%"],
            r["95%"],
            r["99%"],
            f"{float(r['Max Response Time']):.0f}",
        ]
        for route, users, r in results
    ]
    body = (
        "Command: `.venv/bin/python benchmarks/service_load.py --write docs/benchmarks.md` "
        f"({machine()}; one uvicorn worker, ONNX Runtime CPU, locust {args.seconds} s per "
        "route on the same 2 cores). verify: two 250x250 LFW photos per request; identify: "
        f"one photo against {SYNTHETIC + 20:,} identities (20 enrolled through the API, "
        f"{SYNTHETIC:,} synthetic; half the probes are strangers). One verify "
        f"at a time with no other load ({alone['n']} requests): median {alone['p50']:.0f} ms, "
        f"slowest {alone['max']:.0f} ms. Inference queue over the run: {queue['chips']:.0f} "
        f"faces in {queue['batches']:.0f} embedding calls "
        f"({queue['chips'] / max(queue['batches'], 1):.1f} per call), "
        f"{queue['refused']:.0f} requests refused as over its budget.\n\n"
        + md_table(
            [
                "route",
                "load",
                "requests",
                "errors",
                "throughput req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
            ],
            rows,
        )
    )
    print(body)
    if args.write:
        write_section(args.write, "service-load", body)


if __name__ == "__main__":
    main()
