"""Indexing a photo folder: ``facelens index`` against face_recognition's loop, one run.

    .venv/bin/python benchmarks/index_speed.py [--write docs/benchmarks.md]

Two folders: 400 LFW photos (250x250, one face each, some with background faces) and the
shared ``faces`` folder (77 photos from 240p to 1080p, portraits and group shots).
face_recognition's loop is what its README shows: ``load_image_file``, ``face_locations``
(HOG, its default), ``face_encodings``, one process. facelens: ``Indexer`` with one and with
two worker threads into a new SQLite archive, everything ``facelens index`` does included
(hashing, quality, dlib's and SFace's templates and their fusion, one transaction per batch).
Each side runs once warm (models loaded before the clock starts).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from _lfw_archive import lfw_images, make_pipeline
from _report import machine, md_table, write_section
from facelens.archive import Archive, IndexConfig, Indexer, scan
from facelens.gallery import SqliteStore


def folders() -> dict[str, list[Path]]:
    lfw = sorted(p for p in lfw_images().rglob("*.jpg"))[::33][:400]
    faces = [Path(c.path) for c in scan([lfw_images().parents[1] / "faces"])]
    return {"LFW, 400 photos": lfw, "faces/, 77 photos": faces}


def face_recognition_loop(files: list[Path]) -> tuple[float, int]:
    import face_recognition

    found = 0
    t0 = time.perf_counter()
    for f in files:
        image = face_recognition.load_image_file(str(f))
        boxes = face_recognition.face_locations(image)
        found += len(face_recognition.face_encodings(image, boxes))
    return time.perf_counter() - t0, found


def facelens_index(files: list[Path], workers: int, pipelines: list[Any]) -> tuple[float, int]:
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d) / "photos"
        folder.mkdir()
        for n, f in enumerate(files):
            (folder / f"{n:05d}{f.suffix}").symlink_to(f)
        with SqliteStore(Path(d) / "g.db") as store:
            pool = iter(pipelines)
            indexer = Indexer(
                Archive(store, "default"), lambda: next(pool), IndexConfig(workers=workers)
            )
            t0 = time.perf_counter()
            s = indexer.run([folder])
            return time.perf_counter() - t0, s.faces


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--write", type=Path, default=None)
    args = ap.parse_args()
    import face_recognition

    face_recognition.face_encodings(
        face_recognition.load_image_file(str(folders()["LFW, 400 photos"][0]))
    )
    pipelines = [make_pipeline(), make_pipeline()]
    for p in pipelines:
        p.load()
    rows = []
    for name, files in folders().items():
        fr_s, fr_faces = face_recognition_loop(files)
        one_s, one_faces = facelens_index(files, 1, pipelines[:1])
        two_s, two_faces = facelens_index(files, 2, pipelines)
        n = len(files)
        rows.append([name, "face_recognition loop", f"{n / fr_s:.1f}", fr_faces, "1.0x"])
        rows.append(
            [
                name,
                "facelens index, 1 thread",
                f"{n / one_s:.1f}",
                one_faces,
                f"{fr_s / one_s:.1f}x",
            ]
        )
        rows.append(
            [
                name,
                "facelens index, 2 threads",
                f"{n / two_s:.1f}",
                two_faces,
                f"{fr_s / two_s:.1f}x",
            ]
        )
        print(rows[-3:], flush=True)
    text = "\n".join(
        [
            "### Indexing a photo folder (issue 18)",
            "",
            f"Machine: {machine()}. Command: `.venv/bin/python benchmarks/index_speed.py --write "
            "docs/benchmarks.md`. face_recognition's loop (HOG detection, dlib's encodings) "
            "against `facelens index` on the same files in the same run; facelens also keeps "
            "SFace templates, quality, hashes and boxes in the archive.",
            "",
            md_table(["folder", "indexer", "photos/s", "faces", "vs face_recognition"], rows),
        ]
    )
    print(text)
    if args.write:
        write_section(args.write, "archive-index", text)


if __name__ == "__main__":
    main()
