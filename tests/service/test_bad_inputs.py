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

import io
import json
import os
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from tests.conftest import data_root
from tests.service.conftest import free_port

from facelens.gallery import SqliteStore
from facelens.govern import KeyStore

MB = 1024 * 1024


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
    store.close()
    port = free_port()
    log_file = (tmp / "server.log").open("wb")
    env = dict(
        os.environ,
        FACELENS_SERVE_GALLERY=str(tmp / "store.db"),
        FACELENS_SERVE_URLS="1",  # image URLs on: the fetch rules are what is tested
        FACELENS_SERVE_SOURCES=str(data_root() / "video") + "/*",
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "facelens.service.main:app", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log_file,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                # the first health call loads the models, so cases measure only themselves
                if httpx.get(f"{url}/v1/health", timeout=60).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("the service did not start: " + (tmp / "server.log").read_text())
        s = Server(url, proc.pid, admin)
        # warm every route once (first-use allocations are not a case's growth)
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin}"}) as c:
            photo = (data / "faces" / "face_recognition" / "obama.jpg").read_bytes()
            c.post("/v1/detect", files={"image": ("a.jpg", photo)}, timeout=120)
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


# -- the corpus -----------------------------------------------------------------------------

Request = Callable[[httpx.Client], httpx.Response]


@dataclass(frozen=True)
class Case:
    name: str
    send: Request
    status: int
    error: str | None = None  # the ``error`` field expected, when the answer is an error
    peak_mb: int = 150  # how much the server's peak memory may grow while answering
    kept_mb: int = 60  # how much more it may hold once it has answered


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
    failures = []
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.admin}"}, timeout=120
    ) as c:
        for case in corpus(photo):
            before = server.status()["VmRSS"]
            server.reset_peak()
            try:
                r = case.send(c)
            except httpx.HTTPError as e:
                failures.append(f"{case.name}: no answer ({type(e).__name__})")
                continue
            after = server.status()
            peak = (after["VmHWM"] - before) / MB
            kept = (after["VmRSS"] - before) / MB
            body: dict[str, Any] = {}
            if r.headers.get("content-type", "").startswith("application/json"):
                body = r.json()
            problems = []
            if r.status_code != case.status:
                problems.append(f"status {r.status_code}, expected {case.status}")
            if case.error and isinstance(body, dict) and body.get("error") != case.error:
                problems.append(f"error {body.get('error')!r}, expected {case.error!r}")
            if r.status_code >= 400:
                assert set(body) == {"error", "detail", "reasons"}, (case.name, body)
                text = json.dumps(body)
                assert "/tmp" not in text and "Traceback" not in text, (case.name, text)
            if peak > case.peak_mb:
                problems.append(f"peak memory +{peak:.0f} MB, bound {case.peak_mb}")
            if kept > case.kept_mb:
                problems.append(f"kept +{kept:.0f} MB, bound {case.kept_mb}")
            if problems:
                failures.append(f"{case.name}: " + "; ".join(problems) + f" ({r.text[:200]})")
    assert failures == [], "\n".join(failures)
