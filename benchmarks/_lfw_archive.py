"""LFW indexed by ``facelens.archive`` (the templates ``facelens index`` keeps by default:
the default recognizer's, each part's too for a fusion, and dlib's ResNet's for the peer
rows of ``cluster.py``), cached in ``benchmarks/.cache/lfw_archive.db``; resumable like any
index.

    .venv/bin/python benchmarks/_lfw_archive.py
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from _report import ROOT
from facelens.archive import Archive, IndexConfig, Indexer
from facelens.embed import EmbedConfig
from facelens.gallery import SqliteStore
from facelens.pipeline import Pipeline, PipelineConfig
from facelens.runtime import RuntimeConfig

DB = ROOT / "benchmarks" / ".cache" / "lfw_archive.db"
MODEL = EmbedConfig().model


def lfw_images() -> Path:
    data = Path(os.environ.get("FACELENS_DATA") or ROOT.parent / "shared" / "data")
    return (data / "lfw" / "images").resolve()


def make_pipeline() -> Pipeline:
    return Pipeline(
        PipelineConfig(embed=EmbedConfig(model=MODEL), runtime=RuntimeConfig(threads=1))
    )


def build() -> Archive:
    DB.parent.mkdir(parents=True, exist_ok=True)
    archive = Archive(SqliteStore(DB), "default")
    t0 = time.perf_counter()

    def progress(done: int, todo: int, faces: int) -> None:
        if done % 400 < 8 or done == todo:
            rate = done / (time.perf_counter() - t0)
            print(f"  {done}/{todo} files, {faces} faces, {rate:.1f} files/s", file=sys.stderr)

    s = Indexer(archive, make_pipeline, IndexConfig(workers=2)).run(
        [lfw_images()], progress=progress
    )
    print(s.to_dict() | {"failed": len(s.failed)}, file=sys.stderr)
    return archive


if __name__ == "__main__":
    build()
