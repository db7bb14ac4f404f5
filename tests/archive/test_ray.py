"""Indexing on a Ray cluster (a local one, started here) into PostgreSQL gives the faces a
local run gives."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from facelens.archive import Archive, IndexConfig, Indexer
from facelens.archive.distributed import ray_runner
from facelens.gallery.stores import open_store


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _faces(archive: Archive) -> dict[str, tuple[str, tuple[float, ...], np.ndarray]]:
    model = next(m for m in archive.models() if m.startswith("fusion"))
    ids, vecs = archive.templates(model)
    faces = {f.id: f for f in archive.faces()}
    return {i: (faces[i].path, faces[i].box, v) for i, v in zip(ids, vecs, strict=True)}


def test_a_ray_run_into_postgres_stores_the_faces_a_local_run_stores(
    ray_cluster: None,
    photos: Path,
    pg_url: str,
    archive: Archive,
    index_with: Callable[[Archive], Indexer],
) -> None:
    (photos / "broken.jpg").write_bytes(b"not a photo")
    local = index_with(archive).run([photos])
    with open_store(pg_url) as store:
        store.ensure_gallery("default")
        remote_archive = Archive(store, "default")
        indexer = Indexer(remote_archive, lambda: None, IndexConfig(batch=4))
        remote = indexer.run([photos], runner=ray_runner("auto", "dlib+sface"))
        assert (remote.indexed, remote.faces) == (local.indexed, local.faces)
        assert [Path(p).name for p, _ in remote.failed] == ["broken.jpg"]
        a, b = _faces(archive), _faces(remote_archive)
        assert set(a) == set(b) and len(a) > 20
        for i, (path, box, vec) in a.items():
            assert b[i][0] == path and np.allclose(b[i][1], box, atol=0.01)
            assert float(vec @ b[i][2]) > 0.9999
        # resumable the same way: nothing to do the second time
        assert indexer.run([photos], runner=ray_runner("auto", "dlib+sface")).indexed == 0


def test_without_ray_the_option_says_how_to_get_it(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "from facelens.cli.main import main\n"
        f"raise SystemExit(main(['index', {str(tmp_path)!r}, '--ray', 'auto', '--gallery', "
        f"{str(tmp_path / 'g.db')!r}]))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "pip install 'facelens[ray]'" in r.stderr
