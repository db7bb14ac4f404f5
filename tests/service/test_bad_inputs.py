"""The named bad-input corpus: each hostile or malformed request, its expected answer, and a
bound on how much the server's memory may grow while answering it (its peak, reset before
each case) and after it (what it keeps).

The server is a separate ``uvicorn`` process, as deployed (``facelens.service.main``), so its
memory is its own: ``/proc/PID/status`` gives its resident and peak sizes, and writing 5 to
``/proc/PID/clear_refs`` resets the peak before each case.

The CLI's cases (a symlink loop, a FIFO, an unreadable file, an endless device) are at the
end, each with its exit code, run as separate processes with a time limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import json
import math
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from tests.conftest import data_root
from tests.hostile import exif_jpeg, jpeg_scans, tiff
from tests.service.conftest import free_port

from facelens.gallery import SqliteStore
from facelens.govern import KeyStore

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]


# -- files, built here ------------------------------------------------------------------------


def jpeg(w: int, h: int, mode: str = "RGB", quality: int = 75) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (w, h), 128 if mode == "L" else (128,) * len(mode)).save(
        buf, "JPEG", quality=quality
    )
    return buf.getvalue()


def png(img: Image.Image, **kw: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", **kw)
    return buf.getvalue()


def png_bomb(w: int, h: int) -> bytes:
    """A PNG that declares ``w`` x ``h`` grey pixels, all zero, deflated: tiny on the wire."""
    raw_row = b"\x00" + b"\x00" * w
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(raw_row) for _ in range(min(h, 64))) + comp.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def jpeg_declaring(w: int, h: int) -> bytes:
    """A small JPEG whose header is rewritten to declare ``w`` x ``h`` (a decoder would
    allocate for the declared size)."""
    data = bytearray(jpeg(16, 16))
    i = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, i + 5, h, w)
    return bytes(data)


def gif_animated() -> bytes:
    frames = [Image.new("P", (32, 32), i) for i in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], loop=0)
    return buf.getvalue()


def tiff_pages(photo: bytes) -> bytes:
    a = Image.open(io.BytesIO(photo)).convert("RGB")
    buf = io.BytesIO()
    a.save(buf, "TIFF", save_all=True, append_images=[a.rotate(90), a.rotate(180)])
    return buf.getvalue()


def npy_claiming(shape: tuple[int, ...]) -> bytes:
    header = f"{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}"
    header += " " * (63 - (len(header) + 10) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + b"\0" * 64


# -- the server, in its own process ---------------------------------------------------------


@dataclass
class Server:
    url: str
    pid: int
    admin: str
    port: int
    tmp: Path
    face_id: str

    def status(self) -> dict[str, int]:
        out = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            k, _, v = line.partition(":")
            if k in ("VmRSS", "VmHWM"):
                out[k] = int(v.split()[0]) * 1024
        return out

    def reset_peak(self) -> None:
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("bad-inputs")
    store = SqliteStore(tmp / "store.db")
    admin = KeyStore(store).create("acme", ["admin"], "admin")[1]
    face_id = big_photo_face(store, tmp)
    store.close()
    port = free_port()
    log_file = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "facelens"),
            "serve",
            "--gallery",
            str(tmp / "store.db"),
            "--port",
            str(port),
            "--allow-image-urls",  # on: the fetch rules are what is tested
            "--allow-source",
            str(data_root() / "video") + "/*",
            "--allow-source",
            str(tmp / "allowed") + "/*",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                # the first health call loads the models, so cases measure only themselves
                if httpx.get(f"{url}/v1/health", timeout=60).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("the service did not start: " + (tmp / "server.log").read_text())
        s = Server(url, proc.pid, admin, port, tmp, face_id)
        # warm every route once, a large image included (first-use allocations - the
        # detector's buffers for a large picture's tiles - are not a case's growth)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as c:
            photo = (data / "faces" / "face_recognition" / "obama.jpg").read_bytes()
            c.post("/v1/detect", files={"image": ("a.jpg", photo)}, timeout=120)
            c.post("/v1/detect", files={"image": ("a.jpg", jpeg(4000, 3000))}, timeout=120)
            c.post(
                "/v1/verify",
                files={"image_a": ("a.jpg", photo), "image_b": ("b.jpg", photo)},
                timeout=120,
            )
        yield s
    finally:
        proc.terminate()
        proc.wait(30)
        log_file.close()
    log = (tmp / "server.log").read_text()
    assert "Traceback" not in log or "internal error" in log


BIG_PHOTO = (7000, 5200)  # 36.4 MP


def big_photo_face(store: SqliteStore, tmp: Path) -> str:
    """An archive face (gallery ``photos`` of tenant acme) in a 36 MP photo, as
    ``facelens index`` would have recorded it: what ``/faces/{id}/photo`` decodes."""
    from types import SimpleNamespace

    from facelens.archive.store import Archive, ensure_archive_schema
    from facelens.govern.names import gallery_key

    path = tmp / "big.jpg"
    path.write_bytes(jpeg(*BIG_PHOTO, quality=30))
    gallery = gallery_key("acme", "photos")
    store.ensure_gallery(gallery)
    ensure_archive_schema(store)
    data = path.read_bytes()
    st = path.stat()
    face = SimpleNamespace(
        frame=0, n=0, time_s=None, box=(3000.0, 2000.0, 3400.0, 2500.0), landmarks=None,
        quality={}, templates={},
    )  # fmt: skip
    result = SimpleNamespace(
        path=str(path), size=st.st_size, mtime_ns=st.st_mtime_ns,
        sha256=hashlib.sha256(data).hexdigest(), kind="photo", faces=(face,), error=None,
        unchanged=False,
    )  # fmt: skip
    archive = Archive(store, gallery)
    archive.write([result], "2026-01-01T00:00:00+00:00")
    return archive.faces()[0].id


# -- the corpus -----------------------------------------------------------------------------

Request = Callable[[httpx.Client], httpx.Response]


@dataclass(frozen=True)
class Case:
    name: str
    send: Request
    status: int | tuple[int, ...]  # the answer (or any of these)
    error: str | None = None  # the ``error`` field expected, when the answer is an error
    peak_mb: int = 150  # how much the server's peak memory may grow while answering
    kept_mb: int = 60  # how much more it may hold once it has answered
    seconds: float = 120  # how long the answer may take
    check: Callable[[httpx.Response], bool] | None = None  # what else the answer must be
    echoes: str = ""  # the caller's own text, which the answer may repeat


def detect(data: bytes, filename: str = "x.jpg", ctype: str = "image/jpeg") -> Request:
    return lambda c: c.post("/v1/detect", files={"image": (filename, data, ctype)})


def thermal(data: bytes, filename: str) -> Request:
    return lambda c: c.post("/v1/thermal/screen", files={"frame": (filename, data)})


def enroll(name: str, photo: bytes, **form: str) -> Request:
    fields = {"name": name, "consent_purpose": "site access", "consent_granted_by": "self"}
    return lambda c: c.post(
        "/v1/galleries/staff/identities",
        data=fields | form,
        files=[("images", ("p.jpg", photo, "image/jpeg"))],
    )


def stream(source: str) -> Request:
    return lambda c: c.post("/v1/streams", json={"source": source, "gallery": "staff"})


def corpus(photo: bytes) -> list[Case]:
    rng = np.random.default_rng(15)
    noise = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    img16 = Image.fromarray((rng.integers(0, 65535, (120, 160))).astype(np.uint16))
    palette = Image.new("P", (64, 64), 1)
    cmyk = jpeg(64, 64, "CMYK")
    big_faceless = jpeg(7300, 5400, quality=30)  # 39.4 MP of grey
    many_parts = [("images", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(500)]
    too_many_parts = [("f", (f"{i}.jpg", b"x", "image/jpeg")) for i in range(1001)]
    return [
        Case("0-byte upload", detect(b""), 400, "bad_input"),
        Case("text named .jpg", detect(b"hello, I am text\n" * 10), 400, "bad_input"),
        Case("truncated JPEG", detect(photo[: len(photo) // 3]), 400, "bad_input"),
        Case("truncated PNG", detect(png(noise)[:5000], "x.png"), 400, "bad_input"),
        Case("header-only PNG", detect(png(noise)[:33], "x.png"), 400, "bad_input"),
        Case("PNG bomb, 900 MP", detect(png_bomb(30000, 30000), "x.png"), 413, "image_too_large"),
        Case("PNG bomb, 64 MP", detect(png_bomb(8000, 8000), "x.png"), 413, "image_too_large"),
        Case(
            "JPEG of 632 bytes declaring 6000x6000 (under the limit)",
            detect(jpeg_declaring(6000, 6000)),
            200,  # a valid file whose picture is grey: decoded, searched, no face
            peak_mb=800,  # within what the service reserves for it: 20 B/px + 64 MiB
        ),
        Case("JPEG declaring 60000x60000", detect(jpeg_declaring(60000, 60000)), 413),
        Case("16-bit greyscale PNG", detect(png(img16), "x.png"), 200),
        Case("CMYK JPEG", detect(cmyk), 200),
        Case("palette PNG with transparency", detect(png(palette, transparency=0), "x.png"), 200),
        Case("animated GIF", detect(gif_animated(), "x.gif", "image/gif"), 400, "bad_input"),
        Case("multi-page TIFF", detect(tiff_pages(photo), "x.tif", "image/tiff"), 200),
        Case("1x1 image", detect(png(Image.new("RGB", (1, 1))), "x.png"), 200),
        Case("20000x1 image", detect(png(Image.new("RGB", (20000, 1))), "x.png"), 200),
        Case("1x20000 image", detect(png(Image.new("L", (1, 20000))), "x.png"), 200),
        Case(
            "40 MP photo without a face, to verify",
            lambda c: c.post(
                "/v1/verify",
                files={"image_a": ("a.jpg", big_faceless), "image_b": ("b.jpg", photo)},
            ),
            422,
            "no_usable_face",
            peak_mb=900,  # within its reservation (39.4 MP at 20 B/px + the small photo)
        ),
        Case(
            "SVG",
            detect(
                b'<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>',
                "x.svg",
                "image/svg+xml",
            ),
            400,
            "bad_input",
        ),
        Case(
            "HTML",
            detect(
                b"<html><body><img src=x onerror=alert(1)></body></html>", "x.html", "text/html"
            ),
            400,
            "bad_input",
        ),
        Case(
            "100 MB body",
            lambda c: c.post(
                "/v1/detect",
                content=b"\0" * (100 * MB),
                headers={"content-type": "application/octet-stream"},
            ),
            413,
            "body_too_large",
        ),
        Case(
            "100 MB body, streamed without a length",
            lambda c: c.post(
                "/v1/detect",
                content=iter(
                    [
                        b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"'
                        b"\r\n\r\n"
                    ]
                    + [b"\0" * MB] * 100
                ),
                headers={"content-type": "multipart/form-data; boundary=x"},
            ),
            413,
            "body_too_large",
        ),
        Case(
            "500 multipart parts",
            lambda c: c.post(
                "/v1/galleries/staff/identities", data={"name": "x"}, files=many_parts
            ),
            400,
            "bad_input",
        ),
        Case(
            "1,001 multipart parts",
            lambda c: c.post("/v1/detect", files=too_many_parts),
            400,
            "bad_request",
        ),
        Case("1 MB name", enroll("n" * MB, photo), 422, "invalid_request"),
        Case("201-character name", enroll("n" * 201, photo), 422, "invalid_request"),
        Case("terminal escape in a name", enroll("Eve\x1b[2J\x1b[31m", photo), 400, "bad_input"),
        Case("NUL in a name", enroll("Eve\x00", photo), 400, "bad_input"),
        Case(
            "right-to-left override in a name", enroll("Eve\u202egpj.exe", photo), 400, "bad_input"
        ),
        Case("right-to-left mark in a name", enroll("\u200fנועה", photo), 400, "bad_input"),
        Case("a name in Hebrew", enroll("נועה", photo), 201),
        Case(
            "consent expiry that is not a date",
            enroll("Ann", photo, consent_expires_at="next tuesday"),
            400,
            "bad_input",
        ),
        Case(
            "malformed JSON",
            lambda c: c.post(
                "/v1/galleries",
                content=b'{"name": "x",',
                headers={"content-type": "application/json"},
            ),
            422,
            "invalid_request",
        ),
        Case(
            "JSON that is a list",
            lambda c: c.post("/v1/galleries", json=["x"]),
            422,
            "invalid_request",
        ),
        Case(
            "wrong content type for JSON",
            lambda c: c.post(
                "/v1/galleries", content=b"name=x", headers={"content-type": "text/plain"}
            ),
            422,
            "invalid_request",
        ),
        Case(
            "JSON where an upload is expected",
            lambda c: c.post("/v1/detect", json={"image": "aGVsbG8="}),
            400,
            "bad_input",
        ),
        Case(
            "gallery name with ../", lambda c: c.get("/v1/galleries/..%2F..%2Fetc/identities"), 404
        ),
        Case(
            "gallery name of 65 characters",
            lambda c: c.post("/v1/galleries", json={"name": "g" * 65}),
            422,
        ),
        Case("stream source /etc/passwd", stream("/etc/passwd"), 403, "source_not_allowed"),
        Case(
            "stream source file:///etc/shadow",
            stream("file:///etc/shadow"),
            403,
            "source_not_allowed",
        ),
        Case("stream source /dev/zero", stream("/dev/zero"), 403, "source_not_allowed"),
        Case(
            "stream source /proc/self/environ",
            stream("/proc/self/environ"),
            403,
            "source_not_allowed",
        ),
        Case(
            "stream source on loopback", stream("rtsp://127.0.0.1:22/x"), 403, "source_not_allowed"
        ),
        Case(
            "stream source escaping the allowed folder",
            stream(str(data_root() / "video") + "/../../../etc/passwd"),
            403,
            "source_not_allowed",
        ),
        Case(
            "image_url file:///etc/passwd",
            lambda c: c.post("/v1/detect", data={"image_url": "file:///etc/passwd"}),
            400,
            "image_url_refused",
        ),
        Case(
            "image_url on loopback",
            lambda c: c.post("/v1/detect", data={"image_url": "http://127.0.0.1:9/x.jpg"}),
            400,
            "image_url_refused",
        ),
        Case(
            "image_url to cloud metadata",
            lambda c: c.post("/v1/detect", data={"image_url": "http://169.254.169.254/latest/"}),
            400,
            "image_url_refused",
        ),
        Case(
            "image_url gopher",
            lambda c: c.post("/v1/detect", data={"image_url": "gopher://example.com/1"}),
            400,
            "image_url_refused",
        ),
        Case("audit after 10^23", lambda c: c.get("/v1/audit", params={"after": "9" * 23}), 422),
        Case("audit limit 0", lambda c: c.get("/v1/audit", params={"limit": "0"}), 422),
        Case(
            "threshold that is not a number or a name",
            lambda c: c.post(
                "/v1/verify",
                files={"image_a": ("a.jpg", photo), "image_b": ("b.jpg", photo)},
                data={"threshold": "very"},
            ),
            400,
            "bad_input",
        ),
        Case(
            "threshold NaN",
            lambda c: c.post(
                "/v1/verify",
                files={"image_a": ("a.jpg", photo), "image_b": ("b.jpg", photo)},
                data={"threshold": "nan"},
            ),
            400,
            "bad_input",
        ),
        Case("thermal PNG declaring 900 MP", thermal(png_bomb(30000, 30000), "f.png"), 413),
        Case("thermal .npy claiming 37 GiB", thermal(npy_claiming((100000, 100000)), "f.npy"), 413),
        Case(
            "thermal .npy of objects",
            thermal(npy_claiming((2, 2)).replace(b"<f4", b"|O "), "f.npy"),
            400,
        ),
        Case("thermal text named .jpg", thermal(b"not a frame", "f.jpg"), 400),
        Case("unknown route", lambda c: c.get("/v1/nothing"), 404, "not_found"),
        Case("wrong method", lambda c: c.delete("/v1/detect"), 405, "method_not_allowed"),
    ]


def test_the_corpus_is_what_the_issue_names(data: Path) -> None:
    cases = corpus((data / "faces" / "face_recognition" / "obama.jpg").read_bytes())
    assert len(cases) >= 40
    assert len({c.name for c in cases}) == len(cases)


def test_every_bad_input_gets_its_answer_within_its_memory_bound(
    server: Server, data: Path
) -> None:
    photo = (data / "faces" / "face_recognition" / "obama.jpg").read_bytes()
    assert_answers(server, corpus(photo))


def assert_answers(server: Server, cases: list[Case]) -> None:
    """Each case's answer, time and memory, against its bounds; every failure listed."""
    failures = []
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"}, timeout=120
    ) as c:
        for case in cases:
            before = server.status()["VmRSS"]
            server.reset_peak()
            t0 = time.perf_counter()
            try:
                r = case.send(c)
            except httpx.HTTPError as e:
                failures.append(f"{case.name}: no answer ({type(e).__name__})")
                continue
            took = time.perf_counter() - t0
            after = server.status()
            peak = (after["VmHWM"] - before) / MB
            kept = (after["VmRSS"] - before) / MB
            body: dict[str, Any] = {}
            if r.headers.get("content-type", "").startswith("application/json"):
                body = r.json()
            problems = []
            allowed = case.status if isinstance(case.status, tuple) else (case.status,)
            if r.status_code not in allowed:
                problems.append(f"status {r.status_code}, expected {case.status}")
            if case.error and isinstance(body, dict) and body.get("error") != case.error:
                problems.append(f"error {body.get('error')!r}, expected {case.error!r}")
            if r.status_code >= 400:
                assert set(body) == {"error", "detail", "reasons"}, (case.name, body)
                text = (
                    json.dumps(body).replace(case.echoes, "") if case.echoes else json.dumps(body)
                )
                assert "/tmp" not in text and "Traceback" not in text, (case.name, text)
            if case.check is not None and not case.check(r):
                problems.append("the answer is not what it must be")
            if took > case.seconds:
                problems.append(f"answered in {took:.1f} s, bound {case.seconds:g} s")
            if peak > case.peak_mb:
                problems.append(f"peak memory +{peak:.0f} MB, bound {case.peak_mb}")
            if kept > case.kept_mb:
                problems.append(f"kept +{kept:.0f} MB, bound {case.kept_mb}")
            if problems:
                failures.append(f"{case.name}: " + "; ".join(problems) + f" ({r.text[:200]})")
    assert failures == [], "\n".join(failures)


# -- round two (issue 29): what decoders allocate, nothing before the key, slow clients ------


def at_once(n: int, send: Request) -> Request:
    """``send`` from ``n`` clients at once; the answer that is not the first's status, else
    the last (so every one must be as expected)."""

    def all_of(c: httpx.Client) -> httpx.Response:
        def one(_: int) -> httpx.Response:
            with httpx.Client(base_url=c.base_url, headers=c.headers, timeout=120) as own:
                return send(own)

        with ThreadPoolExecutor(n) as pool:
            answers = list(pool.map(one, range(n)))
        odd = [a for a in answers if a.status_code != answers[0].status_code]
        return (odd or answers)[-1]

    return all_of


def no_key(send: Request) -> Request:
    def without(c: httpx.Client) -> httpx.Response:
        with httpx.Client(base_url=c.base_url, timeout=120) as bare:
            return send(bare)

    return without


def only(*keys: str) -> Callable[[httpx.Response], bool]:
    return lambda r: set(r.json()) <= set(keys)


def round_two(server: Server) -> list[Case]:
    tile8 = tiff(64, 64, tile=(32768, 32768), cut=1 << 20)  # declares a 1 GiB tile
    tile16 = tiff(64, 64, bits=16, tile=(32768, 32768), cut=1 << 20)  # and a 2 GiB one
    float40 = tiff(7300, 5400, bits=32, float_samples=True, rows_per_strip=256)
    big_json = b'{"reason": "' + b"x" * (30 * MB) + b'"}'
    link = server.tmp / "allowed" / "clip.mp4"
    link.parent.mkdir(exist_ok=True)
    if not link.is_symlink():
        link.symlink_to("/etc/passwd")
    stop = "/v1/govern/stop"
    return [
        Case("1. TIFF of 1 MB declaring one 32768x32768 tile", detect(tile8, "x.tif"), 413,
             "image_too_large", peak_mb=40, seconds=5),
        Case("1. the same, 16-bit", detect(tile16, "x.tif"), 413, "image_too_large",
             peak_mb=40, seconds=5),
        Case("1. four tile TIFFs at once", at_once(4, detect(tile8, "x.tif")), 413,
             "image_too_large", peak_mb=60, seconds=10),
        Case("1. a tile TIFF to thermal screening", thermal(tile16, "f.tif"), 413,
             "image_too_large", peak_mb=40, seconds=5),
        Case("2. 30 MiB JSON without a key", no_key(lambda c: c.post(
            stop, content=big_json, headers={"content-type": "application/json"})),
            413, "body_too_large", peak_mb=20, seconds=5),
        Case("2. 900 KB JSON without a key", no_key(lambda c: c.post(
            stop, content=big_json[: 900 * 1024] + b'"}',
            headers={"content-type": "application/json"})),
            401, "unauthorized", peak_mb=10, seconds=3),
        Case("2. 30 MiB upload without a key", no_key(
            detect(b"\xff\xd8" + b"\0" * (30 * MB))), 401, "unauthorized",
            peak_mb=10, seconds=5),
        Case("2. a JSON list nested 100,000 deep", lambda c: c.post(
            stop, content=b"[" * 100_000 + b"]" * 100_000,
            headers={"content-type": "application/json"}),
            422, "invalid_request", peak_mb=20, seconds=3),
        Case("2. a JSON body to a route that takes none", lambda c: c.post(
            "/v1/govern/resume", json={"x": 1}), 413, "body_too_large", peak_mb=10),
        Case("4. progressive JPEG of 20,000 scans", detect(jpeg_scans(6000, 6000, 20_000)),
             413, "image_too_large", peak_mb=40, seconds=5),
        Case("5. 40 requests at once for a 36 MP indexed photo", at_once(40, lambda c: c.get(
            f"/v1/galleries/photos/faces/{server.face_id}/photo")), (200, 503),
            peak_mb=2300, kept_mb=100),
        Case("6. 40 MP float32 TIFF", detect(float40, "x.tif"), 200, peak_mb=1000),
        Case("7. a symlink in an allowed folder to a file outside it", stream(str(link)), 403,
             "source_not_allowed", echoes=str(link)),
        Case("10. a consent expiry past the last UTC time",
             enroll("Zed", jpeg(64, 64), consent_expires_at="9999-12-31T23:59:59-14:00"),
             400, "bad_input"),
        Case("10. a thermal region of NaN", lambda c: c.post(
            "/v1/thermal/screen", data={"region": "nan,0,10,10"},
            files={"frame": ("f.npy", b"x")}), 400, "bad_input"),
        Case("10. a blackbody box of infinity", lambda c: c.post(
            "/v1/thermal/screen", data={"blackbody": "0,0,inf,10", "blackbody_temp": "35"},
            files={"frame": ("f.npy", b"x")}), 400, "bad_input"),
        Case("12. retention of true days", lambda c: c.put(
            "/v1/galleries/staff/retention", json={"max_idle_days": True}), 422,
            "invalid_request"),
        Case("12. retention of \"12\" days", lambda c: c.put(
            "/v1/galleries/staff/retention", json={"max_idle_days": "12"}), 422,
            "invalid_request"),
        Case("14. /v1/health without a key shows no activity", no_key(
            lambda c: c.get("/v1/health")), 200,
            check=only("status", "version", "python", "packages", "models", "pipeline",
                       "inference", "store", "worker")),
        Case("15. the web UI carries its security headers", no_key(lambda c: c.get("/")), 200,
             check=lambda r: "frame-ancestors 'none'" in r.headers["content-security-policy"]
             and r.headers["x-frame-options"] == "DENY"
             and r.headers["x-content-type-options"] == "nosniff"
             and r.headers["referrer-policy"] == "no-referrer"),
        # ONNX Runtime's arena grew to what the burst had in flight at once and kept it
        # (+380 MB); it is handed back when the detector goes idle after such a burst
        # (runtime.ReleasingSession): -58 MB measured (benchmarks/kept_memory.py)
        Case("16. a burst of ten 10 MP photos: what the worker keeps after it",
             at_once(10, detect(jpeg(3900, 2600))), (200, 503), peak_mb=2300, kept_mb=100),
        Case("16. EXIF orientation stored as text", detect(exif_jpeg(2, b"6\0")), 200),
        Case("16. EXIF orientation of NaN", detect(exif_jpeg(11, struct.pack("<f", math.nan))),
             200),
    ]  # fmt: skip


def test_round_two_cases_get_their_answers_within_their_bounds(server: Server) -> None:
    assert_answers(server, round_two(server))


def test_the_gallery_file_is_readable_by_its_owner_only(server: Server) -> None:
    assert (server.tmp / "store.db").stat().st_mode & 0o777 == 0o600


def children(pid: int) -> dict[int, float]:
    """The CPU-seconds of each child process of ``pid`` (the decode processes)."""
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                out[int(d.name)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


def test_a_decode_whose_client_has_gone_stops(server: Server) -> None:
    data = jpeg_scans(6000, 6000, 26)  # 32 scans of 36 MP: seconds of decoding
    body = (
        b'--x\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        + data
        + b"\r\n--x--\r\n"
    )
    head = (
        f"POST /v1/detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {server.admin}\r\n"
        f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as s:
        s.sendall(head.encode() + body)
        time.sleep(1.0)  # the decode has started
    time.sleep(1.0)
    first = children(server.pid)
    time.sleep(2.0)
    later = children(server.pid)
    # no decode process is working any more (decoding the picture takes several seconds)
    spent = sum(later.values()) - sum(first.get(p, 0.0) for p in later)
    assert spent < 0.5, (first, later)


def test_slow_clients_are_closed_and_health_stays_quick(server: Server) -> None:
    """300 connections sending a header line every 4 s (benchmarks/slow_clients.py runs
    5,000 for a minute): each closed with a 408 within 30 s; /v1/health meanwhile quick."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from slow_clients import health_once, slow_clients

    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.wait(0.1):
            t0 = time.perf_counter()
            assert health_once(server.port)
            latencies.append((time.perf_counter() - t0) * 1000)

    prober = threading.Thread(target=probe, daemon=True)
    prober.start()
    lifetimes, state = asyncio.run(slow_clients("127.0.0.1", server.port, 300, 4.0, 20.0))
    stop.set()
    prober.join(10)
    assert lifetimes and max(lifetimes) < 30, max(lifetimes)
    assert state.get("answered_408", 0) >= 300
    latencies.sort()
    assert latencies[len(latencies) // 2] < 100, latencies


def test_the_connection_cap_lets_slow_clients_give_way_then_refuses(tmp_path: Path) -> None:
    import uvicorn

    from facelens import Pipeline
    from facelens.service.app import ServiceSettings, create_app

    store = SqliteStore(tmp_path / "s.db")
    key = KeyStore(store).create("acme", ["detect"], "cap")[1]
    store.close()
    port = free_port()
    config = uvicorn.Config(
        create_app(ServiceSettings(gallery_path=tmp_path / "s.db"), Pipeline()),
        host="127.0.0.1",
        port=port,
        http="facelens.service.server:GuardedH11",
        limit_concurrency=16,
        log_level="warning",
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    while not srv.started:
        time.sleep(0.05)
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from slow_clients import health_once

    try:
        assert health_once(port, timeout=120)  # the first answer loads the models
        slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        for c in slow:
            c.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        # a 17th: the connection waiting longest for its headers gives way (408)
        assert health_once(port, timeout=30)
        time.sleep(0.3)
        timed_out = 0
        for c in slow:
            c.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # still open, still waiting
                timed_out += c.recv(100).startswith(b"HTTP/1.1 408")
            c.close()
        assert timed_out == 1  # one of those that had waited longest (all as long here)
        time.sleep(0.3)
        # 16 connections working on requests (their bodies not yet sent): a newcomer is
        # refused with a 503 and closed, none of them dropped
        busy = [socket.create_connection(("127.0.0.1", port)) for _ in range(16)]
        head = (
            f"POST /v1/detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\nContent-Length: 100\r\n\r\n"
        )
        for c in busy:
            c.sendall(head.encode())
        time.sleep(0.3)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
            extra.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = extra.recv(1000)
        assert answer.startswith(b"HTTP/1.1 503") and b"too_many_connections" in answer
        for c in busy:
            c.close()
    finally:
        srv.should_exit = True
        thread.join(10)


def test_a_symlink_swapped_after_the_check_does_not_change_what_is_opened(
    tmp_path: Path,
) -> None:
    from facelens.service.settings import source_allowed

    inside, outside = tmp_path / "videos", tmp_path / "secret"
    inside.mkdir()
    (inside / "clip.mp4").write_bytes(b"the allowed clip")
    outside.write_bytes(b"not for streams")
    link = inside / "link.mp4"
    link.symlink_to(inside / "clip.mp4")
    allowed = source_allowed(str(link), (str(inside) + "/*",))
    assert allowed is not None and allowed.fd is not None
    try:
        link.unlink()
        link.symlink_to(outside)  # the race: swapped after the check
        with open(allowed.open_as, "rb") as f:  # what the capture opens
            assert f.read() == b"the allowed clip"
    finally:
        allowed.close()
    assert source_allowed(str(link), (str(inside) + "/*",)) is None
