"""An open-loop load generator: requests sent at Poisson arrival times, whatever the service's
answers take (used by ``service_load.py`` and ``soak.py``; not meant to be run on its own).

Closed-loop generators (locust's users, each waiting for its answer before the next request)
slow down when the service does, and send in step when their users start together: locust's
``constant_throughput`` users arrived in bursts here (two to four verifies at the same
instant, by the service's own batch counts), which measured a queue of the generator's
making. Here each request has a scheduled send time drawn from an exponential
inter-arrival distribution at the offered rate; its latency is counted from that scheduled
time (so a late send is the service's delay too: no coordinated omission), and the
service's own time comes from its ``Server-Timing`` header.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import httpx

Send = Callable[[httpx.Client, random.Random], httpx.Response]


@dataclass
class Result:
    offered: float
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    server_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        v = sorted(values)
        return v[min(len(v) - 1, int(len(v) * q / 100))]

    def summary(self) -> dict[str, Any]:
        ok = self.statuses.get(200, 0)
        errors = sum(n for s, n in self.statuses.items() if s >= 400) + self.transport_errors
        return {
            "offered_per_s": self.offered,
            "requests": len(self.latencies_ms),
            "errors": errors,
            "refused_503": self.statuses.get(503, 0),
            "statuses": dict(self.statuses),
            "transport_errors": self.transport_errors,
            "throughput_per_s": ok / self.seconds,
            "p50_ms": self.pct(self.latencies_ms, 50),
            "p95_ms": self.pct(self.latencies_ms, 95),
            "p99_ms": self.pct(self.latencies_ms, 99),
            "max_ms": max(self.latencies_ms, default=float("nan")),
            "server_p50_ms": self.pct(self.server_ms, 50),
            "server_p99_ms": self.pct(self.server_ms, 99),
        }


def server_ms(r: httpx.Response) -> float | None:
    for part in r.headers.get("server-timing", "").split(","):
        if "dur=" in part:
            return float(part.split("dur=")[1].split(";")[0])
    return None


def run(url: str, key: str, send: Send, rate: float, seconds: float, seed: int = 15) -> Result:
    """Offer ``rate`` requests a second for ``seconds`` (Poisson arrivals)."""
    rng = random.Random(seed)
    t, arrivals = 0.0, []
    while t < seconds:
        t += rng.expovariate(rate)
        arrivals.append(t)
    res = Result(rate, seconds)
    lock = threading.Lock()
    local = threading.local()

    def client() -> httpx.Client:
        if not hasattr(local, "c"):
            local.c = httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
            )
            local.rng = random.Random(threading.get_ident())
        return local.c  # type: ignore[no-any-return]

    def one(at: float, start: float) -> None:
        c = client()
        delay = start + at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        try:
            r = send(c, local.rng)
        except httpx.HTTPError:
            with lock:
                res.transport_errors += 1
                res.latencies_ms.append((time.perf_counter() - start - at) * 1000)
            return
        ms = (time.perf_counter() - start - at) * 1000  # from the scheduled send time
        with lock:
            res.latencies_ms.append(ms)
            res.statuses[r.status_code] = res.statuses.get(r.status_code, 0) + 1
            s = server_ms(r)
            if s is not None and r.status_code == 200:
                res.server_ms.append(s)

    with ThreadPoolExecutor(max_workers=128) as pool:
        start = time.perf_counter() + 0.5
        for at in arrivals:
            # submit just ahead of time, so a worker waits for its slot, not for a worker
            while time.perf_counter() < start + at - 0.2:
                time.sleep(0.01)
            pool.submit(one, at, start)
    return res
