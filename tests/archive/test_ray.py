"""``facelens index --ray`` on a Ray cluster started here (``ray start --head`` on a loopback
port, token authentication on, as Ray's default is), into PostgreSQL: the faces a local run
gives."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from facelens.archive import Archive, Indexer
from facelens.gallery.stores import open_store

RAY = Path(sys.executable).parent / "ray"
FACELENS = [sys.executable, "-m", "facelens"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_head() -> Iterator[tuple[str, dict[str, str]]]:
    """A one-machine Ray cluster (2 CPUs); yields its address and the environment a driver
    needs to join it (its token)."""
    port = _free_port()
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    start = [
        str(RAY),
        "start",
        "--head",
        "--node-ip-address=127.0.0.1",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
    ]
    r = subprocess.run(start, env=env, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}", env
    finally:
        subprocess.run([str(RAY), "stop", "--force"], env=env, capture_output=True, timeout=120)


def _faces(archive: Archive) -> dict[str, tuple[str, tuple[float, ...], np.ndarray]]:
    model = next(m for m in archive.models() if m.startswith("fusion"))
    ids, vecs = archive.templates(model)
    faces = {f.id: f for f in archive.faces()}
    return {i: (faces[i].path, faces[i].box, v) for i, v in zip(ids, vecs, strict=True)}


def test_a_ray_run_into_postgres_stores_the_faces_a_local_run_stores(
    ray_head: tuple[str, dict[str, str]],
    data: Path,
    photos: Path,
    pg_url: str,
    archive: Archive,
    index_with: Callable[[Archive], Indexer],
) -> None:
    address, env = ray_head
    (photos / "broken.jpg").write_bytes(b"not a photo")
    shutil.copyfile(data / "video" / "bbt_5frames.mp4", photos / "clip.mp4")  # analysed here
    local = index_with(archive).run([photos], videos=True)
    cmd = [*FACELENS, "index", str(photos), "--video", "--ray", address, "--gallery", pg_url]
    cmd += ["--model", "dlib+sface", "--json"]  # the recognizer of the local run (fused)
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 3, r.stderr[-3000:]  # broken.jpg could not be read
    doc = json.loads(r.stdout)
    assert (doc["indexed"], doc["faces"]) == (local.indexed, local.faces)
    assert [Path(f["path"]).name for f in doc["failed"]] == ["broken.jpg"]
    with open_store(pg_url) as store:
        a, b = _faces(archive), _faces(Archive(store, "default"))
    assert set(a) == set(b) and len(a) > 20
    assert any(path.endswith("clip.mp4") for path, _, _ in a.values())
    for i, (path, box, vec) in a.items():
        assert b[i][0] == path and np.allclose(b[i][1], box, atol=0.01)
        assert float(vec @ b[i][2]) > 0.9999
    # resumable the same way: nothing to do the second time
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and json.loads(again.stdout)["indexed"] == 0


def test_without_ray_the_option_says_how_to_get_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from facelens.cli.main import main\n"
        f"raise SystemExit(main(['index', {str(tmp_path)!r}, '--ray', 'auto', '--gallery', "
        f"{str(tmp_path / 'g.db')!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 8 and "pip install 'facelens[ray]'" in r.stderr
