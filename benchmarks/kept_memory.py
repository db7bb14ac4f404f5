"""What a service worker keeps after a burst of large photos, and what keeping less costs.

    .venv/bin/python benchmarks/kept_memory.py [--write docs/benchmarks.md]

Starts two ``facelens serve`` workers at once on one store: ``kept``, whose detector's ONNX
Runtime arena keeps all it ever grew to (``FACELENS_ARENA_KEEP=0``, as before), and
``released``, the default (``facelens.runtime.ReleasingSession``: after a burst with more
in flight at once than ``RuntimeConfig.arena_keep``, the arena is handed back when the
detector goes idle). Each is warmed as ``tests/service/test_bad_inputs.py`` warms its server
(a phone photo, a 12 MP picture, a verify); then, one server at a time, ten clients send a
10 MP JPEG to ``/v1/detect`` at once, and the worker's resident memory is read before and
one second after (the corpus's case 16). The steady state is then timed on both servers in
the same minutes, alternating: one client sending a 1 MP photo again and again (median
latency), and four clients at once (requests per second) - the load under which a release
could fire between requests.

    .venv/bin/python benchmarks/kept_memory.py --sessions [--write docs/benchmarks.md]

compares, in this process, three detector sessions on the same pictures, alternated: the
arena kept (``arena_keep=0``), shrunk after every run (``arena_keep=1``) and off
(``memory_arena=False``): CPU and wall time per detection, which is why the arena is kept
and handed back only after a burst.

    .venv/bin/python benchmarks/kept_memory.py --recognizers [--write docs/benchmarks.md]

the default recognizers' arenas by ``EmbedConfig.batch_size`` (views per forward pass): in a
process of its own per batch size, the allocated memory (``RssAnon``) once loaded and after
embedding 32 real-sized chips with flip (the most the service's inference queue embeds in one
call); then the time per face of 32 and of 8 chips at each batch size, in one process,
alternated.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from _report import data_root, machine, md_table, write_section

VENV_BIN = Path(sys.executable).parent
MB = 2**20


def jpeg(w: int, h: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (w, h), (128, 128, 128)).save(buf, "JPEG", quality=75)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    url: str

    def rss(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError("no VmRSS")

    def cpu(self) -> float:
        """CPU seconds the worker (all its threads) has used: steadier than wall time on
        a shared machine."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start(name: str, store: Path, keep: str | None, log: Path) -> Server:
    env = dict(os.environ)
    if keep is not None:
        env["FACELENS_ARENA_KEEP"] = keep
    port = free_port()
    proc = subprocess.Popen(
        [str(VENV_BIN / "facelens"), "serve", "--gallery", str(store), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
        env=env,
    )
    return Server(name, proc, f"http://127.0.0.1:{port}")


def wait_ready(s: Server) -> None:
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            if httpx.get(f"{s.url}/v1/health", timeout=120).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.3)
    raise SystemExit(f"{s.name} did not start")


def sessions(runs: int, write: Path | None) -> None:
    import numpy as np

    from facelens.detect import DetectConfig
    from facelens.detect.yunet import YunetDetector
    from facelens.environment import default_threads
    from facelens.models import ModelStore
    from facelens.runtime import RuntimeConfig
    from facelens.sandbox import return_large_blocks

    return_large_blocks()  # as the service does
    threads = default_threads()
    variants = {
        "kept": RuntimeConfig(threads=threads, arena_keep=0),
        "shrunk every run": RuntimeConfig(threads=threads, arena_keep=1),
        "off": RuntimeConfig(threads=threads, memory_arena=False),
    }
    dets = {n: YunetDetector(DetectConfig(), ModelStore(), c) for n, c in variants.items()}
    face = Image.open(data_root() / "faces" / "face_recognition" / "obama.jpg").convert("RGB")
    pictures = {
        f"photo {face.width}x{face.height}": np.asarray(face),
        "frame 1920x1080": np.asarray(face.resize((1920, 1080))),
    }
    rows = []
    for label, img in pictures.items():
        for d in dets.values():
            d.detect(img)
        cpu: dict[str, list[float]] = {n: [] for n in dets}
        wall: dict[str, list[float]] = {n: [] for n in dets}
        names = list(dets)
        for i in range(runs):
            for n in names[i % 3 :] + names[: i % 3]:
                t0, c0 = time.perf_counter(), time.process_time()
                dets[n].detect(img)
                wall[n].append(time.perf_counter() - t0)
                cpu[n].append(time.process_time() - c0)
        c = {n: statistics.median(v) * 1000 for n, v in cpu.items()}
        w = {n: statistics.median(v) * 1000 for n, v in wall.items()}
        for n in names:
            rows.append(
                [
                    label,
                    n,
                    f"{c[n]:.1f}",
                    f"{c[n] / c['kept']:.2f}",
                    f"{w[n]:.1f}",
                    f"{w[n] / w['kept']:.2f}",
                ]
            )
        print(rows[-3:], flush=True)
    table = md_table(["picture", "detector arena", "CPU ms", "ratio", "wall ms", "ratio"], rows)
    body = (
        "Command: `.venv/bin/python benchmarks/kept_memory.py --sessions --write "
        f"docs/benchmarks.md` ({machine()}; three YuNet sessions in one process, {runs} "
        "detections each, alternated; medians; the machine was shared with other jobs, CPU "
        "time is the steadier figure).\n\n" + table
    )
    print(body)
    if write:
        write_section(write, "arena-sessions", body)


BATCHES = (32, 16, 8, 4)


def _chips(n: int) -> dict[str, Any]:
    """``n`` random chips of each view the default recognizers read."""
    import numpy as np

    rng = np.random.default_rng(0)
    return {k: rng.integers(0, 255, (n, s, s, 3), dtype=np.uint8) for k, s in VIEWS}


VIEWS = (("dlib150", 150), ("arcface112", 112))


def _anon_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def recognizer_arena(batch: int) -> tuple[float, float]:
    """(RssAnon once loaded, after embedding 32 chips) of the default pipeline at ``batch``;
    run in a process of its own (``--one-batch``)."""
    from facelens import EmbedConfig, Pipeline, PipelineConfig

    pipe = Pipeline(PipelineConfig(embed=EmbedConfig(batch_size=batch)))
    pipe.embedder.load()
    before = _anon_mb()
    pipe.embed_views(_chips(32))
    return before, _anon_mb()


def recognizers(write: Path | None, rounds: int = 7) -> None:
    from facelens import EmbedConfig, Pipeline, PipelineConfig

    memory = {}
    for b in BATCHES:
        out = subprocess.run(
            [sys.executable, __file__, "--one-batch", str(b)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        memory[b] = (float(out[-2]), float(out[-1]))
        print(b, memory[b], flush=True)
    pipes = {b: Pipeline(PipelineConfig(embed=EmbedConfig(batch_size=b))) for b in BATCHES}
    ms: dict[tuple[int, int], list[float]] = {}
    for n in (32, 8):
        views = _chips(n)
        for p in pipes.values():
            p.embed_views(views)  # warm
        for _ in range(rounds):
            for b, p in pipes.items():
                t0 = time.perf_counter()
                p.embed_views(views)
                ms.setdefault((b, n), []).append((time.perf_counter() - t0) * 1000 / n)
    med = {k: statistics.median(v) for k, v in ms.items()}
    rows = [
        [
            str(b),
            f"{memory[b][0]:.0f}",
            f"{memory[b][1]:.0f}",
            f"**+{memory[b][1] - memory[b][0]:.0f}**",
            f"{med[(b, 32)]:.1f} ({med[(b, 32)] / med[(32, 32)]:.2f})",
            f"{med[(b, 8)]:.1f} ({med[(b, 8)] / med[(32, 8)]:.2f})",
        ]
        for b in BATCHES
    ]
    body = (
        "Command: `.venv/bin/python benchmarks/kept_memory.py --recognizers --write "
        f"docs/benchmarks.md` ({machine()}; the default recognizers, "
        f"`{pipes[32].model}`; memory in a process of its own per batch size, time in one "
        f"process with the batch sizes alternated, median of {rounds}; ratio to 32).\n\n"
        + md_table(
            [
                "views per forward pass",
                "allocated once loaded (MB)",
                "after 32 chips with flip (MB)",
                "kept",
                "ms per face, 32 chips (ratio)",
                "ms per face, 8 chips (ratio)",
            ],
            rows,
        )
    )
    print(body)
    if write:
        write_section(write, "arena-recognizers", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path)
    ap.add_argument("--rounds", type=int, default=4, help="alternations of the steady state")
    ap.add_argument(
        "--keep", default=None, help="FACELENS_ARENA_KEEP of the released worker (default: its)"
    )
    ap.add_argument("--sessions", action="store_true", help="the in-process comparison")
    ap.add_argument("--runs", type=int, default=45, help="detections per session (--sessions)")
    ap.add_argument("--recognizers", action="store_true", help="the recognizers' arenas")
    ap.add_argument("--one-batch", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_batch:
        print(*recognizer_arena(args.one_batch))
        return
    if args.recognizers:
        recognizers(args.write)
        return
    if args.sessions:
        sessions(args.runs, args.write)
        return

    from facelens.gallery import SqliteStore
    from facelens.govern import KeyStore

    tmp = Path(tempfile.mkdtemp())
    store = SqliteStore(tmp / "store.db")
    key = KeyStore(store).create("acme", ["admin"], "bench")[1]
    store.close()
    auth = {"Authorization": f"Bearer {key}"}
    photo = (data_root() / "faces" / "face_recognition" / "obama.jpg").read_bytes()
    big, twelve = jpeg(3900, 2600), jpeg(4000, 3000)

    servers = [
        start("kept", tmp / "store.db", "0", tmp / "kept.log"),
        start("released", tmp / "store.db", args.keep, tmp / "released.log"),
    ]
    try:
        for s in servers:
            wait_ready(s)
            with httpx.Client(base_url=s.url, headers=auth, timeout=300) as c:
                c.post("/v1/detect", files={"image": ("a.jpg", photo)})
                c.post("/v1/detect", files={"image": ("a.jpg", twelve)})
                c.post(
                    "/v1/verify", files={"image_a": ("a.jpg", photo), "image_b": ("b.jpg", photo)}
                )

        def detect(s: Server, data: bytes) -> tuple[int, float]:
            with httpx.Client(base_url=s.url, headers=auth, timeout=300) as c:
                t0 = time.perf_counter()
                r = c.post("/v1/detect", files={"image": ("a.jpg", data)})
                return r.status_code, time.perf_counter() - t0

        burst: dict[str, dict[str, float]] = {}
        for s in servers:
            before = s.rss()
            with ThreadPoolExecutor(10) as pool:
                codes = [c for c, _ in pool.map(lambda _: detect(s, big), range(10))]
            time.sleep(1.0)
            after = s.rss()
            burst[s.name] = {
                "before": before / MB,
                "after": after / MB,
                "kept": (after - before) / MB,
                "answered": codes.count(200),
                "busy": codes.count(503),
            }
            print(s.name, burst[s.name], flush=True)

        single: dict[str, list[float]] = {s.name: [] for s in servers}
        rate: dict[str, list[float]] = {s.name: [] for s in servers}
        cpu: dict[str, list[float]] = {s.name: [] for s in servers}
        for r in range(args.rounds):
            for s in servers if r % 2 == 0 else servers[::-1]:
                c0 = s.cpu()
                single[s.name] += [detect(s, photo)[1] for _ in range(15)]
                t0 = time.perf_counter()
                with ThreadPoolExecutor(4) as pool:
                    codes = [c for c, _ in pool.map(lambda _: detect(s, photo), range(40))]
                rate[s.name].append(codes.count(200) / (time.perf_counter() - t0))
                cpu[s.name].append((s.cpu() - c0) / 55)
            print("round", r, flush=True)
        after_steady = {s.name: s.rss() / MB for s in servers}
    finally:
        for s in servers:
            s.proc.terminate()
            s.proc.wait(30)

    med = {n: statistics.median(v) * 1000 for n, v in single.items()}
    rps = {n: statistics.median(v) for n, v in rate.items()}
    cpu_ms = {n: statistics.median(v) * 1000 for n, v in cpu.items()}
    rows = [
        [
            n,
            f"{burst[n]['before']:.0f}",
            f"{burst[n]['after']:.0f}",
            f"**{burst[n]['kept']:+.0f}**",
            f"{burst[n]['answered']:.0f} / {burst[n]['busy']:.0f}",
            f"{med[n]:.0f}",
            f"{rps[n]:.2f}",
            f"{cpu_ms[n]:.0f}",
            f"{after_steady[n]:.0f}",
        ]
        for n in ("kept", "released")
    ]
    table = md_table(
        [
            "detector arena",
            "RSS before burst (MB)",
            "1 s after (MB)",
            "kept",
            "answered 200 / 503",
            "1 client: median ms",
            "4 clients: requests/s",
            "worker CPU ms per request",
            "RSS after steady state (MB)",
        ],
        rows,
    )
    body = (
        "Command: `.venv/bin/python benchmarks/kept_memory.py "
        + (f"--keep {args.keep} " if args.keep else "")
        + "--write docs/benchmarks.md` "
        f"({machine()}; two workers side by side, the clients on the same cores; the machine "
        "was shared with other jobs, so the timings are ratios taken in the same minutes).\n\n"
        f"{table}\n\n"
        f"Released vs kept: **kept memory {burst['released']['kept']:+.0f} MB vs "
        f"{burst['kept']['kept']:+.0f} MB** after ten concurrent 10 MP detections; steady "
        f"state, one client: latency x{med['released'] / med['kept']:.3f}; four clients: "
        f"throughput x{rps['released'] / rps['kept']:.3f}; the worker's CPU time per request "
        f"x{cpu_ms['released'] / cpu_ms['kept']:.3f}."
    )
    print(body)
    if args.write:
        write_section(args.write, "kept-memory", body)


if __name__ == "__main__":
    main()
