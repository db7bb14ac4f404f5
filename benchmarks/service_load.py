"""Verify and identify latency and throughput of the service under load (60 s per load).

    .venv/bin/python benchmarks/service_load.py [--write docs/benchmarks.md] [--seconds 60]

Starts ``facelens serve`` (one uvicorn worker) on a fresh SQLite gallery on this machine and
drives it from this process with an open-loop generator (``loadgen.py``: Poisson arrivals at
the offered rate, latency counted from each request's scheduled send time), on the same 2
cores as the service:

- verify: two 250x250 LFW photos of one person per request (random genuine pairs of 40
  people, both images uploaded on every request);
- identify: one photo per request against a gallery of 10,000 identities - 20 people
  enrolled through the API (2 photos each) and 9,980 synthetic ones (each a blend of two
  real LFW embeddings of other people, with noise: as close to real faces as real strangers
  are) imported into the store before the service starts; half the probes are of people not
  enrolled;
- first, verify requests one at a time (the latency floor), and the service's CPU time per
  verify (its process's user + system time over 100 of them);
- then each route at 20 requests a second (the goal's load), 10 and 5.

The service's own time per request comes from its ``Server-Timing`` header; its inference
queue's statistics (faces per embedding call, requests refused) from ``/v1/health``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

import loadgen
from _report import data_root, machine, md_table, write_section
from facelens.eval.lfw import lfw_image, read_people

VENV_BIN = Path(sys.executable).parent
SYNTHETIC = 9_980
LOADS = ("verify:20", "verify:10", "verify:5", "identify:20", "identify:10", "identify:5")


@dataclass
class Setup:
    lfw: Path
    people: dict[str, list[int]]
    enrolled: list[str]
    load: Path  # a_NNN.jpg / b_NNN.jpg pairs, probe_NNN.jpg


def prepare(tmp: Path) -> Setup:
    lfw = data_root() / "lfw"
    people = read_people(lfw)
    many = sorted(n for n, idx in people.items() if len(idx) >= 4)[:40]
    load = tmp / "load"
    load.mkdir()
    for n, name in enumerate(many):
        idx = sorted(people[name])
        shutil.copy(lfw_image(lfw, name, idx[2]), load / f"a_{n:03d}.jpg")
        shutil.copy(lfw_image(lfw, name, idx[3]), load / f"b_{n:03d}.jpg")
        shutil.copy(lfw_image(lfw, name, idx[3]), load / f"probe_{n:03d}.jpg")
    # the other 20 are strangers: their probes are in the load set too
    return Setup(lfw, people, many[:20], load)


def synthetic_gallery(path: Path, s: Setup) -> None:
    """9,980 identities made from real embeddings of LFW people outside the load set, in the
    bootstrap tenant's gallery ``default``, tagged with the default model."""
    import numpy as np

    from facelens import Pipeline
    from facelens.gallery import Consent, Identity, Sample, SqliteStore

    p = Pipeline()
    skip = set(s.enrolled) | {f.name for f in s.load.iterdir()}
    others = sorted(n for n in s.people if n not in skip)[:400]
    real = []
    for name in others:
        img, _ = p.decode(lfw_image(s.lfw, name, sorted(s.people[name])[0]))
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
        sample = Sample(f"s{k:06d}", ident.id, p.model, v[k], {}, f"{k:064x}", None, now)
        items.append((ident, [sample]))
    store = SqliteStore(path)
    store.ensure_gallery("default/default")
    store.import_identities("default/default", items)
    store.close()


@dataclass
class Service:
    url: str
    key: str
    pid: int

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        return self.memory_mb()["VmRSS"]

    def memory_mb(self) -> dict[str, float]:
        """The worker's resident memory (``VmRSS``) and its parts: ``RssAnon`` (the heap and
        every allocation: what a leak grows), ``RssFile`` (pages of mapped files: the
        libraries, the models, and the gallery SQLite reads through a memory map, which the
        kernel may drop and read again), ``RssShmem``."""
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "RssAnon", "RssFile", "RssShmem"):
                out[key] = int(value.split()[0]) / 1024
        return out

    def load(self) -> dict[str, Any]:
        """The worker's queue and this key's tenant's timings (``/v1/health/load``)."""
        r = httpx.get(
            self.url + "/v1/health/load",
            headers={"Authorization": f"Bearer {self.key}"},
            timeout=60,
        )
        return r.json()  # type: ignore[no-any-return]


@contextmanager
def serve(tmp: Path, s: Setup, port: int = 18765) -> Iterator[Service]:
    """``facelens serve`` on a gallery of 10,000 (20 enrolled through the API)."""
    synthetic_gallery(tmp / "g.db", s)
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
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(url + "/v1/health", timeout=60).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        for name in s.enrolled:
            idx = sorted(s.people[name])
            r = httpx.post(
                url + "/v1/galleries/default/identities",
                data={"name": name, "consent_purpose": "benchmark", "consent_granted_by": "b"},
                files=[
                    ("images", (f"{i}.jpg", lfw_image(s.lfw, name, i).read_bytes(), "image/jpeg"))
                    for i in idx[:2]
                ],
                headers={"Authorization": f"Bearer {key}"},
                timeout=60,
            )
            r.raise_for_status()
        yield Service(url, key, server.pid)
    finally:
        server.terminate()
        server.wait(timeout=30)


def senders(load: Path) -> dict[str, loadgen.Send]:
    pairs = [
        (a.read_bytes(), (load / ("b_" + a.name[2:])).read_bytes())
        for a in sorted(load.glob("a_*.jpg"))
    ]
    probes = [p.read_bytes() for p in sorted(load.glob("probe_*.jpg"))]

    def verify(c: httpx.Client, rng: random.Random) -> httpx.Response:
        a, b = rng.choice(pairs)
        return c.post(
            "/v1/verify",
            files={"image_a": ("a.jpg", a, "image/jpeg"), "image_b": ("b.jpg", b, "image/jpeg")},
        )

    def identify(c: httpx.Client, rng: random.Random) -> httpx.Response:
        return c.post(
            "/v1/galleries/default/identify",
            files={"image": ("p.jpg", rng.choice(probes), "image/jpeg")},
        )

    return {"verify": verify, "identify": identify}


def one_at_a_time(svc: Service, send: loadgen.Send, n: int = 100) -> dict[str, float]:
    """Requests one after another with nothing else running: the latency floor, and the
    service's CPU time per request."""
    ms = []
    rng = random.Random(1)
    with httpx.Client(
        base_url=svc.url, headers={"Authorization": f"Bearer {svc.key}"}, timeout=60
    ) as c:
        for _ in range(5):
            send(c, rng).raise_for_status()
        cpu0 = svc.cpu_s()
        for _ in range(n):
            t0 = time.perf_counter()
            send(c, rng).raise_for_status()
            ms.append((time.perf_counter() - t0) * 1000)
        cpu = (svc.cpu_s() - cpu0) / n * 1000
    ms.sort()
    return {"n": n, "p50": ms[n // 2], "max": ms[-1], "cpu_ms": cpu}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--loads", default=",".join(LOADS), help="route:req/s, comma-separated")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    s = prepare(tmp)
    send = senders(s.load)
    rows, floors = [], {}
    with serve(tmp, s) as svc:
        for route in ("verify", "identify"):
            floors[route] = one_at_a_time(svc, send[route])
            print(route, "one at a time:", floors[route], flush=True)
        for load in args.loads.split(","):
            route, rate = load.split(":")
            cpu0 = svc.cpu_s()
            r = loadgen.run(svc.url, svc.key, send[route], float(rate), args.seconds).summary()
            r["server_cpu_cores"] = (svc.cpu_s() - cpu0) / args.seconds
            print(route, r, flush=True)
            rows.append(
                [
                    route,
                    f"{float(rate):.0f}",
                    r["requests"],
                    r["errors"],
                    f"{r['throughput_per_s']:.1f}",
                    f"{r['p50_ms']:.0f}",
                    f"{r['p95_ms']:.0f}",
                    f"{r['p99_ms']:.0f}",
                    f"{r['max_ms']:.0f}",
                    f"{r['server_p50_ms']:.0f} / {r['server_p99_ms']:.0f}",
                    f"{r['server_cpu_cores']:.2f}",
                ]
            )
        queue = svc.load()["queue"]
    print("inference queue:", queue)
    body = (
        "Command: `.venv/bin/python benchmarks/service_load.py --write docs/benchmarks.md` "
        f"({machine()}; one uvicorn worker, ONNX Runtime CPU; the open-loop generator "
        f"`benchmarks/loadgen.py` on the same 2 cores, Poisson arrivals, {args.seconds} s per "
        "load). verify: two 250x250 LFW photos per request; identify: one photo against "
        f"{SYNTHETIC + 20:,} identities (20 enrolled through the API, {SYNTHETIC:,} "
        "synthetic; half the probes are strangers). One request at a time, 100 of each: "
        + "; ".join(
            f"{k} median {v['p50']:.0f} ms (slowest {v['max']:.0f}), the service's CPU "
            f"{v['cpu_ms']:.0f} ms per request"
            for k, v in floors.items()
        )
        + f". Inference queue over the run: {queue['chips']:.0f} faces in "
        f"{queue['batches']:.0f} embedding calls "
        f"({queue['chips'] / max(queue['batches'], 1):.1f} per call), "
        f"{queue['refused']:.0f} requests refused as over its budget.\n\n"
        + md_table(
            [
                "route",
                "offered req/s",
                "requests",
                "errors",
                "answered req/s",
                "p50 ms",
                "p95 ms",
                "p99 ms",
                "max ms",
                "service's own p50 / p99 ms",
                "service CPU (cores)",
            ],
            rows,
        )
    )
    print(body)
    if args.write:
        write_section(args.write, "service-load", body)


if __name__ == "__main__":
    main()
