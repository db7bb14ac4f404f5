"""What the live view costs: a stream watched with no viewer, one viewer and five viewers.

    .venv/bin/python benchmarks/live_view.py [--rounds 5] [--write docs/benchmarks.md]

Starts the service (one uvicorn worker, as ``fuzz_api.py`` does), enrols the two people of
the Hamilton clip, and watches the clip as a file (every frame decoded; detection on every
second frame, on the whole frame, so the pacer's choices do not differ between runs) with
0, 1 and 5 viewers of
``GET /v1/streams/{id}/live``, in turn, ``--rounds`` times (interleaved, so a change in the
machine's load falls on every configuration alike). A viewer is a client thread reading the
multipart answer and splitting it into parts, as the web UI's page does (without drawing).

Per configuration (median over the rounds): the watch's real-time factor (the clip's seconds
over the seconds from the stream's start to its end), the server's CPU seconds for the watch
(user + system of the worker process, from /proc: the watch, the frames' encoding and the
answers), the frames each viewer got, and each figure as a ratio to the watch with no viewer.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from _report import data_root, machine, md_table, write_section
from facelens.service.live import LiveConfig, frame_part
from fuzz_api import start

CLIP = "hamilton_clip.mp4"
CLIP_SECONDS = 275 / 29.97
PEOPLE = (
    ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
    ("Alex Lacamoire", "alex-lacamoire.png"),
)
VIEWERS = (0, 1, 5)
# the same work in every run: detection on every second frame, on the whole 640x360 frame
# (the pacer's automatic choices would follow the machine's load)
WATCH = {"gallery": "stage", "detect_every": 2, "detect_max_side": 640}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def viewer(url: str, key: str, jid: str, got: list[int]) -> None:
    """Read the live view to its end, counting frames (parts are split, not decoded)."""
    headers = {"Authorization": f"Bearer {key}"}
    with (
        httpx.Client(base_url=url, headers=headers, timeout=120) as c,
        c.stream("GET", f"/v1/streams/{jid}/live") as r,
    ):
        if r.status_code != 200:
            raise SystemExit(f"live view refused: {r.status_code} {r.read()!r}")
        buf = b""
        for chunk in r.iter_bytes():
            buf += chunk
            while (end := buf.find(b"\r\n\r\n")) >= 0:
                head = buf[:end].decode("ascii")
                length = int(head.split("Content-Length: ", 1)[1].split("\r\n", 1)[0])
                if len(buf) < end + 4 + length + 2:
                    break
                got[0] += '"kind":"frame"' in head
                buf = buf[end + 4 + length + 2 :]


def watch(url: str, key: str, pid: int, viewers: int) -> dict[str, Any]:
    """One watch of the clip with ``viewers`` viewers: wall seconds, CPU seconds, frames."""
    clip = data_root() / "video" / CLIP
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as c:
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        r = c.post("/v1/streams", json=WATCH | {"source": str(clip)})
        r.raise_for_status()
        jid = r.json()["id"]
        got = [[0] for _ in range(viewers)]
        threads = [
            threading.Thread(target=viewer, args=(url, key, jid, g), daemon=True) for g in got
        ]
        for t in threads:
            t.start()
        while (st := c.get(f"/v1/streams/{jid}").json())["status"] in ("starting", "running"):
            time.sleep(0.1)
        wall, cpu = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
        for t in threads:
            t.join(60)
    if st["status"] != "finished" or st["frames"] != 275:
        raise SystemExit(f"the watch did not finish the clip: {st}")
    return {"wall": wall, "cpu": cpu, "sent": [g[0] for g in got]}


def encode_ms() -> dict[str, float]:
    """The feed's own work per frame sent (scale, JPEG, header), in this process: median ms
    on the clip's first 60 frames as they are (640x360) and doubled (1280x720)."""
    import cv2
    import numpy as np

    from facelens.stream import FaceView, FrameView

    cap = cv2.VideoCapture(str(data_root() / "video" / CLIP))
    frames = []
    while len(frames) < 60 and (got := cap.read())[0]:
        frames.append(cv2.cvtColor(got[1], cv2.COLOR_BGR2RGB))
    cap.release()
    face = (FaceView((100.0, 50.0, 180.0, 150.0), 1, "Lin-Manuel Miranda", True),)
    out = {}
    for label, scale in (("640x360", 1), ("1280x720", 2)):
        views = [
            FrameView(
                i, i / 30, np.ascontiguousarray(cv2.resize(f, None, fx=scale, fy=scale)), face
            )
            for i, f in enumerate(frames)
        ]
        times = []
        for v in views:
            t0 = time.process_time()
            frame_part(v, LiveConfig())
            times.append((time.process_time() - t0) * 1000)
        out[label] = statistics.median(times)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--write", type=Path)
    args = ap.parse_args()
    proc, url, key = start(Path(tempfile.mkdtemp()))
    runs: dict[int, list[dict[str, Any]]] = {n: [] for n in VIEWERS}
    try:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as c:
            c.post("/v1/galleries", json={"name": "stage"}).raise_for_status()
            for name, f in PEOPLE:
                c.post(
                    "/v1/galleries/stage/identities",
                    data={"name": name, "consent_purpose": "bench", "consent_granted_by": name},
                    files={"images": (f, (data_root() / "video" / f).read_bytes(), "image/png")},
                ).raise_for_status()
        watch(url, key, proc.pid, 0)  # warm-up: models loaded, caches filled
        for r in range(args.rounds):
            for n in VIEWERS:
                runs[n].append(watch(url, key, proc.pid, n))
                print(f"round {r + 1}, {n} viewers: {runs[n][-1]}", flush=True)
    finally:
        proc.terminate()
        proc.wait(30)

    def med(n: int, what: str) -> float:
        return statistics.median(x[what] for x in runs[n])

    base_rtf, base_cpu = CLIP_SECONDS / med(0, "wall"), med(0, "cpu")
    rows = []
    for n in VIEWERS:
        rtf, cpu = CLIP_SECONDS / med(n, "wall"), med(n, "cpu")
        sent = [s for x in runs[n] for s in x["sent"]]
        rows.append([
            "none" if n == 0 else str(n),
            f"{rtf:.2f}",
            f"{rtf / base_rtf:.2f}",
            f"{cpu:.1f}",
            f"{cpu / base_cpu:.2f}",
            f"{cpu / 275 * 1000:.0f}",
            "-" if not sent else f"{min(sent)}-{max(sent)}",
        ])  # fmt: skip
    headers = ["live viewers", "real-time factor", "vs none", "server CPU s", "vs none",
               "CPU ms per frame", "frames each viewer got"]  # fmt: skip
    body = (
        f"Command: `.venv/bin/python benchmarks/live_view.py --rounds {args.rounds} --write "
        f"docs/benchmarks.md` ({machine()}; one uvicorn worker; the viewers are client threads "
        "on the same 2 cores; a machine shared with other work, so the ratios in one run are "
        "the figures to read). The Hamilton clip (275 frames, 640x360, 9.2 s) watched as a "
        "file against two enrolled people, detection on every second frame at full size; the "
        "live view at its defaults (at most 10 frames a second, 640 px, JPEG quality 75); "
        f"median of {args.rounds} rounds.\n\n" + md_table(headers, rows)
    )
    enc = encode_ms()
    fps = LiveConfig().max_fps
    shares = [f"{k} {v:.1f} ms ({v * fps / 10:.1f}% of a core at {fps:g} a second)"
              for k, v in enc.items()]  # fmt: skip
    body += (
        "\n\nThe feed's own work per frame sent (scaling, JPEG, header; CPU time of the "
        "process, median of 60 frames), done once per frame whatever the number of viewers: "
        + ", ".join(shares)
        + "."
    )
    print(body)
    if args.write:
        write_section(args.write, "live-view", body)


if __name__ == "__main__":
    main()
