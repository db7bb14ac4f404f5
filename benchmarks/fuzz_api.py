"""schemathesis against the running service: every phase (examples, coverage, fuzzing,
stateful), counting requests and server errors.

    .venv/bin/python benchmarks/fuzz_api.py [--max-examples 300] [--write docs/benchmarks.md]

Starts ``facelens serve`` (one uvicorn worker, image URLs on so their refusals are fuzzed
too) on a fresh SQLite store with an admin key and a gallery holding one enrolled person,
then runs ``schemathesis run`` with the checks ``not_a_server_error`` and
``response_schema_conformance`` over all operations but the endless ``/v1/events`` and
``POST /v1/streams`` (allowed sources only, so fuzzed ones are refused with 403 before
anything opens). Requests and their statuses are counted from schemathesis's NDJSON event
report; a 5xx anywhere fails the run (exit 1).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _report import data_root, machine, write_section
from facelens.gallery import SqliteStore
from facelens.govern import KeyStore

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(tmp: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    store = SqliteStore(tmp / "g.db")
    key = KeyStore(store).create("acme", ["admin"], "fuzz")[1]
    store.close()
    port = free_port()
    env = dict(
        os.environ,
        FACELENS_SERVE_GALLERY=str(tmp / "g.db"),
        FACELENS_SERVE_URLS="1",
        FACELENS_SERVE_SOURCES=str(data_root() / "video") + "/*",
    )
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "facelens.service.main:build",
            "--factory",
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(url + "/v1/health", timeout=60).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    photo = data_root() / "faces" / "face_recognition" / "obama.jpg"
    r = httpx.post(
        url + "/v1/galleries/g/identities",
        headers={"Authorization": f"Bearer {key}"},
        data={"name": "Barack Obama", "consent_purpose": "fuzz", "consent_granted_by": "fuzz"},
        files=[("images", ("o.jpg", photo.read_bytes(), "image/jpeg"))],
        timeout=120,
    )
    r.raise_for_status()
    return proc, url, key


def count(report: Path) -> dict[str, Any]:
    """Requests and statuses from schemathesis's NDJSON events."""
    statuses: Counter[int] = Counter()
    server_errors: list[str] = []

    def walk(x: Any) -> None:
        if isinstance(x, dict):
            resp = x.get("response")
            req = x.get("request")
            if isinstance(resp, dict) and "status_code" in resp and isinstance(req, dict):
                s = int(resp["status_code"])
                statuses[s] += 1
                if s >= 500:
                    server_errors.append(f"{req.get('method')} {req.get('uri')} -> {s}")
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    for line in report.read_text().splitlines():
        if line.strip():
            walk(json.loads(line))
    return {
        "requests": sum(statuses.values()),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": server_errors,
    }


def run(max_examples: int, seed: int, tmp: Path) -> dict[str, Any]:
    proc, url, key = start(tmp)
    try:
        t0 = time.perf_counter()
        r = subprocess.run(
            [
                str(VENV_BIN / "schemathesis"),
                "run",
                f"{url}/openapi.json",
                "-H",
                f"Authorization: Bearer {key}",
                "--checks",
                "not_a_server_error,response_schema_conformance",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                str(max_examples),
                "--seed",
                str(seed),
                "--workers",
                "1",
                "--exclude-path",
                "/v1/events",
                "--exclude-path",
                "/v1/streams",
                "--request-timeout",
                "120",
                "--report",
                "ndjson",
                "--report-ndjson-path",
                str(tmp / "events.ndjson"),
            ],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        elapsed = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(30)
    out = count(tmp / "events.ndjson")
    out |= {
        "seconds": round(elapsed, 1),
        "schemathesis_exit": r.returncode,
        "summary": "\n".join(r.stdout.strip().splitlines()[-12:]),
    }
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--max-examples", type=int, default=300)
    ap.add_argument("--seed", type=int, default=15)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    r = run(args.max_examples, args.seed, Path(tempfile.mkdtemp()))
    print(json.dumps({k: v for k, v in r.items() if k != "summary"}, indent=1))
    print(r["summary"])
    st = r["statuses"]
    if args.write:
        body = (
            f"Command: `.venv/bin/python benchmarks/fuzz_api.py --max-examples "
            f"{args.max_examples} --write docs/benchmarks.md` ({machine()}; schemathesis "
            "phases examples, coverage, fuzzing and stateful; checks not_a_server_error and "
            f"response_schema_conformance; seed {args.seed}).\n\n"
            f"**{r['requests']:,} requests, {len(r['server_errors'])} answered 5xx** "
            f"(schemathesis exit {r['schemathesis_exit']}) in {r['seconds']:.0f} s. "
            "Statuses: " + ", ".join(f"{k}: {v:,}" for k, v in st.items()) + "."
        )
        write_section(args.write, "fuzz-api", body)
    ok = r["requests"] > 0 and not r["server_errors"] and r["schemathesis_exit"] == 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
