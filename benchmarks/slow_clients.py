"""Slow clients ("slowloris") against the service, while /v1/health is probed.

    .venv/bin/python benchmarks/slow_clients.py [--clients 5000] [--seconds 60]
        [--write docs/benchmarks.md]

Starts ``facelens serve`` (one worker) on a fresh gallery and keeps ``--clients`` connections
open against it for ``--seconds``: each sends ``GET /v1/health HTTP/1.1`` and then one
header line every ``--every`` seconds (4), never the blank line that ends the headers; when
the server closes one, its client connects again at once (an attacker keeps the pressure
on). Meanwhile a separate process asks ``/v1/health`` ten times a second on a fresh
connection each time. Reported: how long the server let a slow connection live (the bound
is 30 s), the probe's latency (the bound for its p99 is 100 ms) and failures, the server's
resident memory and open descriptors at the peak, and how much it logged. Exits 1 past a
bound. The clients, the probe and the server share the machine's cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

from _report import ROOT, machine, md_table, write_section

VENV_BIN = Path(sys.executable).parent
LIFETIME_BOUND_S = 30.0
HEALTH_P99_BOUND_MS = 100.0


def health_once(port: int, timeout: float = 5.0) -> bool:
    """``GET /v1/health`` on a new connection, read to its end; whether it answered 200."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.startswith(b"HTTP/1.1 200")


def probe(port: int, seconds: float) -> None:
    """The probe's process: /v1/health every 0.1 s, a new connection each time (a bare socket:
    the figure is the server's, not a client library's); prints JSON."""
    lat, fails = [], 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.perf_counter()
        try:
            if health_once(port):
                lat.append((time.perf_counter() - t0) * 1000)
            else:
                fails += 1
        except OSError:
            fails += 1
        time.sleep(max(0.0, 0.1 - (time.perf_counter() - t0)))
    print(json.dumps({"latencies_ms": lat, "failures": fails}))


async def slow_client(
    host: str, port: int, every: float, stop: float, lifetimes: list[float], state: dict[str, int]
) -> None:
    while time.monotonic() < stop:
        t0 = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection(host, port)
        except OSError:
            state["connect_failed"] += 1
            await asyncio.sleep(0.5)
            continue
        state["open"] += 1
        state["peak_open"] = max(state["peak_open"], state["open"])
        try:
            writer.write(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            n = 0
            while time.monotonic() < stop:
                try:
                    data = await asyncio.wait_for(reader.read(4096), every)
                except TimeoutError:
                    n += 1
                    writer.write(f"X-Slow-{n}: {'a' * 20}\r\n".encode())
                    await writer.drain()
                    continue
                if not data:  # closed by the server
                    lifetimes.append(time.monotonic() - t0)
                    state["answers"] += 1
                    break
                if data.startswith(b"HTTP/1.1 "):  # the server's answer, before it closes
                    status = "answered_" + data[9:12].decode("latin-1")
                    state[status] = state.get(status, 0) + 1
        except (OSError, ConnectionError):
            lifetimes.append(time.monotonic() - t0)
        finally:
            writer.transport.abort()
            state["open"] -= 1
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()


async def slow_clients(
    host: str, port: int, clients: int, every: float, seconds: float
) -> tuple[list[float], dict[str, int]]:
    lifetimes: list[float] = []
    state = {"open": 0, "peak_open": 0, "connect_failed": 0, "answers": 0}
    stop = time.monotonic() + seconds
    tasks = []
    for i in range(clients):
        tasks.append(asyncio.create_task(slow_client(host, port, every, stop, lifetimes, state)))
        if i % 200 == 199:
            await asyncio.sleep(0.05)  # a connection storm, but not a SYN flood
    await asyncio.gather(*tasks)
    await asyncio.sleep(0.5)  # the transports' own closing runs on the loop
    return lifetimes, state


def count_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return -1


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(clients: int, seconds: float, every: float, port: int) -> dict[str, float]:
    """One run against a fresh server; the figures."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if clients + 100 > hard:
        raise SystemExit(f"the file-descriptor limit ({hard}) is below {clients} clients")
    tmp = Path(tempfile.mkdtemp())
    log = tmp / "server.log"
    server = subprocess.Popen(
        [
            str(VENV_BIN / "facelens"),
            "serve",
            "--gallery",
            str(tmp / "g.db"),
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/v1/health", timeout=60).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        rss0 = rss_mb(server.pid)
        cpu0, t_start = cpu_s(server.pid), time.monotonic()
        peak = {"rss": rss0, "fds": count_fds(server.pid)}
        done = threading.Event()

        def watch() -> None:
            while not done.wait(1):
                peak["rss"] = max(peak["rss"], rss_mb(server.pid))
                peak["fds"] = max(peak["fds"], count_fds(server.pid))

        threading.Thread(target=watch, daemon=True).start()
        # the peer: the same probe against the same server with no slow client, just before
        alone = subprocess.run(
            [sys.executable, __file__, "--probe", str(port), "--seconds", "20"],
            capture_output=True,
            text=True,
            check=True,
        )
        baseline = sorted(json.loads(alone.stdout)["latencies_ms"])
        prober = subprocess.Popen(
            [sys.executable, __file__, "--probe", str(port), "--seconds", str(seconds - 5)],
            stdout=subprocess.PIPE,
            text=True,
        )
        lifetimes, state = asyncio.run(slow_clients("127.0.0.1", port, clients, every, seconds))
        out, _ = prober.communicate(timeout=120)
        done.set()
        server_cores = (cpu_s(server.pid) - cpu0) / (time.monotonic() - t_start)
        probed = json.loads(out)
        after = httpx.get(url + "/v1/health", timeout=10).status_code
    finally:
        server.terminate()
        server.wait(30)
    lat = sorted(probed["latencies_ms"])
    return {
        "clients": clients,
        "slow_connections": len(lifetimes),
        "lifetime_median_s": statistics.median(lifetimes) if lifetimes else float("nan"),
        "lifetime_max_s": max(lifetimes) if lifetimes else float("nan"),
        "peak_open": state["peak_open"],
        "connect_failed": state["connect_failed"],
        "closed_with_408": state.get("answered_408", 0),
        "refused_503": state.get("answered_503", 0),
        "health_probes": len(lat),
        "health_failures": probed["failures"],
        "health_p50_ms": lat[len(lat) // 2] if lat else float("nan"),
        "health_p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan"),
        "health_max_ms": lat[-1] if lat else float("nan"),
        "health_after": after,
        "alone_p50_ms": baseline[len(baseline) // 2],
        "alone_p99_ms": baseline[min(len(baseline) - 1, int(len(baseline) * 0.99))],
        "server_rss_start_mb": rss0,
        "server_rss_peak_mb": peak["rss"],
        "server_fds_peak": peak["fds"],
        "server_cpu_cores": server_cores,
        "server_log_bytes": log.stat().st_size,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=5000)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--every", type=float, default=4.0)
    ap.add_argument("--port", type=int, default=18791)
    ap.add_argument("--write", type=Path)
    ap.add_argument("--probe", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.probe:
        probe(int(args.probe), args.seconds)
        return
    r = run(args.clients, args.seconds, args.every, args.port)
    print(json.dumps(r, indent=1))
    ok = (
        r["lifetime_max_s"] < LIFETIME_BOUND_S
        and r["health_p99_ms"] < HEALTH_P99_BOUND_MS
        and r["health_failures"] == 0
        and r["health_after"] == 200
    )
    if args.write:
        body = (
            f"Command: `.venv/bin/python benchmarks/slow_clients.py --clients {args.clients} "
            f"--seconds {args.seconds:g} --write docs/benchmarks.md` ({machine()}; the machine "
            f"was shared with other work, load average {os.getloadavg()[0]:.0f} at the end; "
            "clients, probe and server on the same cores). "
            f"{args.clients:,} connections each sending a request's headers one line every "
            f"{args.every:g} s (reconnecting when closed) against one worker, for "
            f"{args.seconds:g} s, while another process asked `/v1/health` ten times a "
            "second.\n\n"
            + md_table(
                ["figure", "value", "bound"],
                [
                    ["slow connections closed", f"{r['slow_connections']:,}", ""],
                    [
                        "a slow connection's life, median / longest",
                        f"{r['lifetime_median_s']:.1f} s / {r['lifetime_max_s']:.1f} s",
                        f"< {LIFETIME_BOUND_S:g} s",
                    ],
                    ["most open at once (client side)", f"{r['peak_open']:,}", ""],
                    [
                        "closed with 408 / refused with 503 / could not connect",
                        f"{r['closed_with_408']:,} / {r['refused_503']:,} / "
                        f"{r['connect_failed']:,}",
                        "",
                    ],
                    [
                        "`/v1/health` p50 / p99 / max",
                        f"{r['health_p50_ms']:.0f} / {r['health_p99_ms']:.0f} / "
                        f"{r['health_max_ms']:.0f} ms",
                        f"p99 < {HEALTH_P99_BOUND_MS:g} ms",
                    ],
                    [
                        "`/v1/health` p50 / p99 with no slow client (peer, same server, "
                        "just before)",
                        f"{r['alone_p50_ms']:.0f} / {r['alone_p99_ms']:.0f} ms",
                        "",
                    ],
                    [
                        "`/v1/health` probes failed",
                        f"{r['health_failures']} of {r['health_probes'] + r['health_failures']}",
                        "0",
                    ],
                    [
                        "server memory, start / peak",
                        f"{r['server_rss_start_mb']:.0f} / {r['server_rss_peak_mb']:.0f} MB",
                        "",
                    ],
                    ["server file descriptors, peak", f"{r['server_fds_peak']:,}", ""],
                    ["server CPU over the run", f"{r['server_cpu_cores']:.2f} cores", ""],
                    ["server log written", f"{r['server_log_bytes']:,} bytes", ""],
                ],
            )
        )
        write_section(args.write, "slow-clients", body)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "benchmarks"))
    main()
