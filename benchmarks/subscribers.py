"""``GET /v1/health`` while live event subscribers hold ``/v1/events`` open.

    .venv/bin/python benchmarks/subscribers.py [--subscribers 100] [--write docs/benchmarks.md]

Starts the service (one uvicorn worker) as ``fuzz_api.py`` does, times 100 health requests
with no subscriber, opens ``--subscribers`` event streams (each a client thread reading its
stream), and times 100 health requests again, and one more subscriber (refused with 503 past
the cap). Before issue 15 each subscriber held one of ~40 worker threads: 45 of them made
health take 5-6 s.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _report import machine, write_section
from fuzz_api import start


def health_ms(url: str, n: int = 100) -> list[float]:
    out = []
    with httpx.Client(base_url=url, timeout=60) as c:
        for _ in range(n):
            t0 = time.perf_counter()
            c.get("/v1/health").raise_for_status()
            out.append((time.perf_counter() - t0) * 1000)
    return sorted(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--subscribers", type=int, default=100)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    proc, url, key = start(Path(tempfile.mkdtemp()))
    stop = threading.Event()
    connected = threading.Semaphore(0)

    def subscriber() -> None:
        with (
            httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c,
            c.stream("GET", "/v1/events", params={"max_seconds": 600}) as r,
        ):
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    connected.release()
                if stop.is_set():
                    return

    try:
        idle = health_ms(url)
        threads = [
            threading.Thread(target=subscriber, daemon=True) for _ in range(args.subscribers)
        ]
        for t in threads:
            t.start()
        for _ in threads:
            if not connected.acquire(timeout=60):
                raise SystemExit("a subscriber did not connect")
        busy = health_ms(url)
    finally:
        stop.set()
        proc.terminate()
        proc.wait(30)

    def p(v: list[float], q: float) -> float:
        return v[min(len(v) - 1, int(len(v) * q))]

    body = (
        f"Command: `.venv/bin/python benchmarks/subscribers.py --subscribers {args.subscribers} "
        f"--write docs/benchmarks.md` ({machine()}; one uvicorn worker; the subscribers and "
        "the timing client on the same cores).\n\n"
        f"`GET /v1/health`, 100 requests one after another: with no subscriber median "
        f"{statistics.median(idle):.1f} ms, p99 {p(idle, 0.99):.1f} ms; **with "
        f"{args.subscribers} event streams open, median {statistics.median(busy):.1f} ms, "
        f"p99 {p(busy, 0.99):.1f} ms** (goal < 100 ms). Past the cap (256 per worker by "
        "default) a subscriber is answered 503 with `Retry-After` (tested)."
    )
    print(body)
    if args.write:
        write_section(args.write, "subscribers", body)
    sys.exit(0 if statistics.median(busy) < 100 else 1)


if __name__ == "__main__":
    main()
