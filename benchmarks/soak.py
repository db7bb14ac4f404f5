"""A soak: the service at 80% of its measured capacity for 10 minutes, watching its memory.

    .venv/bin/python benchmarks/soak.py [--minutes 10] [--write docs/benchmarks.md]

Starts the service as ``service_load.py`` does (one uvicorn worker, a 10,000-identity
gallery), measures its capacity for a mix of verify and identify, then offers 80% of it -
Poisson arrivals, alternating verify and identify - for ``--minutes``. Capacity: the rate
the service answered (requests answered per second, not the nominal offered rate: Poisson
arrivals over 30 s stray from it) in the highest 30-second step it answered in full, with no
503 and p99 under 2 s; steps of 2 requests/s from 6 (steps of 4 from 8 measured the first
runs: a step that passed by luck just under the knee put the soak at 87-90% of what the
service sustains). The service's resident memory is sampled every 10 s; the figure is its
growth from the end of the first minute (after warm-up) to the end, which must stay under
5%, with zero errors. Exits 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

import loadgen
from _report import machine, write_section
from service_load import prepare, senders, serve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    s = prepare(tmp)
    send = senders(s.load)

    def mixed(c: httpx.Client, rng: random.Random) -> httpx.Response:
        return send["verify" if rng.random() < 0.5 else "identify"](c, rng)

    load_before = os.getloadavg()[0]  # the machine's other work, if any
    with serve(tmp, s) as svc:
        capacity = 0.0
        for offered in range(6, 41, 2):
            r = loadgen.run(svc.url, svc.key, mixed, offered, 30).summary()
            print("capacity step", offered, r, flush=True)
            if r["errors"] or r["p99_ms"] > 2000:
                break
            capacity = r["throughput_per_s"]
        if capacity == 0:
            raise SystemExit("the service did not sustain even the lowest step")
        rate = 0.8 * capacity
        seconds = args.minutes * 60
        samples: list[tuple[float, dict[str, float]]] = []
        done = threading.Event()

        def watch() -> None:
            t0 = time.monotonic()
            while not done.wait(10):
                samples.append((time.monotonic() - t0, svc.memory_mb()))

        watcher = threading.Thread(target=watch, daemon=True)
        mem_start = svc.memory_mb()
        watcher.start()
        result = loadgen.run(svc.url, svc.key, mixed, rate, seconds).summary()
        done.set()
        watcher.join()
        mem_end = svc.memory_mb()
        health = svc.load()
    warm = next((m for t, m in samples if t >= 60), mem_start)

    def grew(part: str) -> float:
        return (mem_end[part] - warm[part]) / warm[part] * 100

    rss_start, after_warmup, rss_end = mem_start["VmRSS"], warm["VmRSS"], mem_end["VmRSS"]
    growth = grew("VmRSS")
    peak = max((m["VmRSS"] for _, m in samples), default=rss_end)
    ok = growth < 5 and result["errors"] == 0
    print(result, {"warm": warm, "end": mem_end, "growth_pct": growth})
    for t, m in samples:
        print(f"{t:6.0f} s", {k: round(v) for k, v in m.items()}, flush=True)
    statuses = ", ".join(
        f"{n} answered {code}" for code, n in sorted(result["statuses"].items()) if code >= 400
    )
    if result.get("transport_errors"):
        statuses += f"{', ' if statuses else ''}{result['transport_errors']} failed in transport"
    body = (
        f"Command: `.venv/bin/python benchmarks/soak.py --minutes {args.minutes:g} --write "
        f"docs/benchmarks.md` ({machine()}; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} at the end; one "
        "uvicorn worker, the 10,000-identity gallery of "
        "the load benchmark, half verify and half identify, Poisson arrivals from "
        "`benchmarks/loadgen.py` on the same cores).\n\n"
        f"Measured capacity for this mix: {capacity:.1f} requests/s (answered per second in "
        "the highest 30-s step, of 2 requests/s each, answered in full with p99 under 2 s). "
        f"Soak at 80% of it, {rate:.1f} requests/s for "
        f"{args.minutes:g} minutes: **{result['requests']:,} requests, {result['errors']} "
        f"errors**, p50 {result['p50_ms']:.0f} ms, p99 {result['p99_ms']:.0f} ms. Resident "
        f"memory {rss_start:.0f} MB at the start, {after_warmup:.0f} MB after the first "
        f"minute, {rss_end:.0f} MB at the end (peak {peak:.0f} MB): **growth "
        f"{growth:+.1f}%** after warm-up (bound 5%); of it, allocated memory (RssAnon) "
        f"{warm['RssAnon']:.0f} -> {mem_end['RssAnon']:.0f} MB ({grew('RssAnon'):+.1f}%), pages "
        f"of mapped files (RssFile: libraries, models, the gallery read through SQLite's "
        f"memory map) {warm['RssFile']:.0f} -> {mem_end['RssFile']:.0f} MB "
        f"({grew('RssFile'):+.1f}%). Errors: {statuses or 'none'}. "
        "The service's own p99 over its last "
        f"2,000 requests per route: "
        + ", ".join(
            f"{k} {v['p99_ms']:.0f} ms" for k, v in health["timings"].items() if v["n"] > 100
        )
        + "."
    )
    print(body)
    if args.write:
        write_section(args.write, "soak", body)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
