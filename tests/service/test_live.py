"""The live view (``GET /v1/streams/{id}/live``) on the Hamilton clip: frames with boxes,
track ids and names, ended tracks' best shots, the identify scope, names held for
confirmation never shown, the viewer cap, a viewer that stops reading holding up neither the
watch nor the other viewers, the stop control ending views; and the Live page in Debian's
chromium showing the picture change with names drawn and a strip of recent faces
(screenshots in artifacts/screenshots/)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from tests.service.conftest import Service
from tests.service.ui import axe_violations, open_page, shot, sign_in

from facelens.service.errors import HttpError
from facelens.service.live import LiveConfig, LiveFeeds
from facelens.stream import FaceView, FrameView, Observers, TrackEnd

LIMITS = LiveConfig()
PEOPLE = (
    ("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
    ("Alex Lacamoire", "alex-lacamoire.png"),
)


@pytest.fixture(scope="module")
def stage(service: Service, data: Path) -> Path:
    """Galleries with the two people of the Hamilton clip: ``stage`` names them at once,
    ``held`` wants two people to confirm each identification; the clip."""
    with service.client("admin") as c:
        for gallery, confirm in (("stage", 1), ("held", 2)):
            r = c.post("/v1/galleries", json={"name": gallery, "confirm": confirm})
            assert r.status_code == 201, r.text
            for name, f in PEOPLE:
                r = c.post(
                    f"/v1/galleries/{gallery}/identities",
                    data={"name": name, "consent_purpose": "show", "consent_granted_by": name},
                    files={"images": (f, (data / "video" / f).read_bytes(), "image/png")},
                )
                assert r.status_code == 201, r.text
    return data / "video" / "hamilton_clip.mp4"


def start(service: Service, clip: Path, gallery: str = "stage") -> str:
    with service.client("admin") as c:
        r = c.post("/v1/streams", json={"source": str(clip), "gallery": gallery})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def status(service: Service, jid: str) -> dict[str, Any]:
    with service.client("admin") as c:
        return dict(c.get(f"/v1/streams/{jid}").json())


def parts(chunks: Iterator[bytes]) -> Iterator[tuple[dict[str, Any], bytes]]:
    """The parts of a live answer: each one's X-Facelens-View and its JPEG."""
    buf = b""
    for chunk in chunks:
        buf += chunk
        while (end := buf.find(b"\r\n\r\n")) >= 0:
            head = buf[:end].decode("ascii").split("\r\n")
            fields = dict(h.split(": ", 1) for h in head if ": " in h)
            assert head[0].strip() == "--facelens-frame", head
            length = int(fields["Content-Length"])
            if len(buf) < end + 4 + length + 2:
                break
            yield json.loads(fields["X-Facelens-View"]), buf[end + 4 : end + 4 + length]
            buf = buf[end + 4 + length + 2 :]
    assert buf == b"--facelens-frame--\r\n"  # ended as a multipart answer ends


def picture(jpeg: bytes) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img is not None
    return img


def test_a_viewer_sees_the_frames_with_names_and_the_best_shots_of_ended_tracks(
    service: Service, stage: Path
) -> None:
    jid = start(service, stage)
    frames: list[tuple[dict[str, Any], bytes]] = []
    ends: list[tuple[dict[str, Any], bytes]] = []
    with service.client("identify") as c, c.stream("GET", f"/v1/streams/{jid}/live") as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "multipart/x-mixed-replace; boundary=facelens-frame"
        for meta, jpeg in parts(r.iter_bytes()):  # to the end of the clip: the answer ends
            (frames if meta["kind"] == "frame" else ends).append((meta, jpeg))
    assert status(service, jid)["status"] == "finished"
    assert len(frames) >= 10, len(frames)
    indexes = [m["index"] for m, _ in frames]
    assert indexes == sorted(set(indexes)) and indexes[-1] > 200  # newest first, never older
    first, last = picture(frames[0][1]), picture(frames[-1][1])
    assert first.shape == last.shape == (360, 640, 3)  # the clip's size is within max_side
    assert np.abs(first.astype(int) - last.astype(int)).mean() > 10  # the picture changes
    faces = [f for m, _ in frames for f in m["faces"]]
    # boxes in the picture's pixels, a face at the edge boxed to the edge
    assert faces and all(0 <= f["box"][0] < f["box"][2] <= 640 for f in faces)
    assert all(0 <= f["box"][1] < f["box"][3] <= 360 for f in faces)
    named = {f["name"] for f in faces if f["name"]}
    assert named <= {p for p, _ in PEOPLE} and "Lin-Manuel Miranda" in named
    assert all(f["confirmed"] for f in faces if f["name"]) and not any(f["held"] for f in faces)
    # every track ended (the last ones when the clip did), its best shot a real picture
    assert ends and {e["reason"] for e, _ in ends} <= {
        "cut",
        "unseen",
        "displaced",
        "split",
        "closed",
    }
    shots = [picture(j) for _, j in ends if j]
    assert shots and all(min(s.shape[:2]) >= 32 for s in shots)
    assert {f["track"] for f in faces} >= {e["track"] for e, _ in ends if e["name"]}


def test_the_live_view_needs_the_identify_scope_of_the_streams_tenant(
    service: Service, stage: Path
) -> None:
    jid = start(service, stage)
    try:
        path = f"/v1/streams/{jid}/live"
        with service.client() as c:
            assert c.get(path).status_code == 401
        with service.client("reader") as c:  # detect and verify only
            r = c.get(path)
            assert r.status_code == 403 and "identify" in r.json()["detail"]
        with service.client("other") as c:  # another tenant's admin: no such stream
            assert c.get(path).status_code == 404
        with service.client("identify") as c:
            assert c.get("/v1/streams/nosuchstream/live").status_code == 404
            # never a key in the URL
            assert (
                c.get(
                    path, params={"key": service.keys["identify"]}, headers={"Authorization": ""}
                ).status_code
                == 401
            )
    finally:
        with service.client("admin") as c:
            c.delete(f"/v1/streams/{jid}")
    with service.client("identify") as c:
        r = c.get(path)
        assert r.status_code == 409 and r.json()["error"] == "stream_not_running"


def test_names_held_for_two_people_to_confirm_are_not_shown(service: Service, stage: Path) -> None:
    jid = start(service, stage, "held")
    held = []
    with service.client("identify") as c, c.stream("GET", f"/v1/streams/{jid}/live") as r:
        for meta, _ in parts(r.iter_bytes()):
            held += [f for f in meta.get("faces", []) if f["held"]]
            assert meta.get("name") is None and all(
                f["name"] is None for f in meta.get("faces", [])
            )
    assert held, "no face was identified: the test shows nothing"


def _stalled_viewer(service: Service, jid: str) -> socket.socket:
    """A viewer that asks for the live view and then never reads (a tiny receive buffer)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    host, port = service.url.removeprefix("http://").split(":")
    s.connect((host, int(port)))
    s.sendall(
        f"GET /v1/streams/{jid}/live HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: Bearer {service.keys['identify']}\r\n\r\n".encode()
    )
    s.settimeout(30)
    assert s.recv(12) == b"HTTP/1.1 200"
    return s


def test_viewers_are_capped_and_one_that_stops_reading_holds_up_nobody(
    service: Service, stage: Path
) -> None:
    jid = start(service, stage)
    stalled = [_stalled_viewer(service, jid) for _ in range(LIMITS.viewers_per_stream - 1)]
    try:
        seen: list[tuple[float, int]] = []
        t0 = time.monotonic()

        def read() -> None:
            with service.client("identify") as c, c.stream("GET", f"/v1/streams/{jid}/live") as r:
                for meta, _ in parts(r.iter_bytes()):
                    if meta["kind"] == "frame":
                        seen.append((time.monotonic() - t0, meta["index"]))

        reader = threading.Thread(target=read)
        reader.start()
        deadline = time.monotonic() + 30
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        assert seen
        # the cap: seven stalled viewers and one reading; a ninth is refused
        with service.client("identify") as c:
            r = c.get(f"/v1/streams/{jid}/live")
            assert r.status_code == 503 and r.json()["error"] == "too_many_viewers"
            assert "Retry-After" in r.headers
        reader.join(240)
        assert not reader.is_alive()
    finally:
        for s in stalled:
            s.close()
    st = status(service, jid)
    # the watch went to the clip's end while seven viewers read nothing, and the reading
    # viewer got frames all along, not in one burst at the end
    assert st["status"] == "finished" and st["frames"] == 275, st
    assert len(seen) >= 10 and seen[-1][1] > 200
    gaps = np.diff([t for t, _ in seen])
    assert gaps.max() < 5.0, gaps.max()


def test_the_stop_control_ends_live_views(service: Service, stage: Path) -> None:
    jid = start(service, stage)
    frames, stopped_at, waited = 0, 0.0, 99.0
    admin = service.client("admin")
    try:
        with service.client("identify") as c, c.stream("GET", f"/v1/streams/{jid}/live") as r:
            for meta, _ in parts(r.iter_bytes()):
                frames += meta["kind"] == "frame"
                if frames == 3 and not stopped_at:
                    assert admin.post("/v1/govern/stop", json={"reason": "x"}).status_code == 200
                    stopped_at = time.monotonic()
            waited = time.monotonic() - stopped_at
    finally:
        assert admin.post("/v1/govern/resume").status_code == 200
        admin.close()
    assert stopped_at and waited < 5.0, waited
    assert "stopped by the operator" in (status(service, jid)["error"] or "")


# -- the feed itself, without a server ---------------------------------------------------


class Watch:
    """What a feed needs of a watch session: ``subscribe()``, here a bare ``Observers``."""

    def __init__(self) -> None:
        self.hub = Observers()

    def subscribe(self) -> Any:
        return self.hub.subscribe()

    def frame(self, i: int) -> None:
        img = np.full((720, 1280, 3), i % 256, np.uint8)
        face = FaceView((1200.0, -10.0, 1300.0, 90.0), 3, "Zoë Ångström", True)
        self.hub.publish_frame(FrameView(i, i / 30, img, (face,)))


def wait_for(what: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (got := what()) and time.monotonic() < deadline:
        time.sleep(0.01)
    return got


def test_a_feed_encodes_only_while_someone_watches_and_never_waits_for_a_viewer() -> None:
    feeds, watch = LiveFeeds(), Watch()
    watch.frame(0)
    assert not watch.hub.active  # nobody watches: the watch prepares no frame for anyone
    feed, slow = feeds.join("s1", watch)
    _, fast = feeds.join("s1", watch)
    assert watch.hub.active and feeds.feed("s1") is feed
    got: list[bytes] = []
    t0 = time.monotonic()
    for i in range(1, 120):  # the watch publishes; nothing it does waits for the viewers
        watch.frame(i)
        got += fast.take() or []
        time.sleep(0.01)
    assert wait_for(lambda: fast.take())
    # the fast viewer got frames as they came; the one that never took holds one frame
    assert len(got) >= 3 and slow.dropped >= 2
    waiting = slow.take()
    assert waiting is not None and len(waiting) == 1
    meta, jpeg = next(parts(iter([waiting[0], b"--facelens-frame--\r\n"])))
    assert picture(jpeg).shape == (360, 640, 3)  # scaled to max_side
    face = meta["faces"][0]
    assert face["box"] == [600.0, 0.0, 640.0, 45.0]  # scaled, and kept inside the picture
    head = waiting[0].split(b"\r\n\r\n", 1)[0]
    assert face["name"] == "Zoë Ångström" and head.isascii()  # escaped in the header
    assert feed.frames_encoded <= (time.monotonic() - t0) * LIMITS.max_fps + 2  # bounded rate
    # the last viewer gone, the watch stops preparing frames and the feed is forgotten
    feed.leave(slow)
    assert watch.hub.active
    feed.leave(fast)
    assert not watch.hub.active and feeds.feed("s1") is None


def test_a_feed_takes_eight_viewers_and_ends_them_with_the_watch() -> None:
    feeds, watch = LiveFeeds(), Watch()
    viewers = [feeds.join("s2", watch)[1] for _ in range(LIMITS.viewers_per_stream)]
    with pytest.raises(HttpError) as refused:
        feeds.join("s2", watch)
    assert refused.value.status == 503 and refused.value.error == "too_many_viewers"
    chip = np.full((150, 150, 3), 128, np.uint8)
    watch.hub.publish_end(TrackEnd(3, None, chip, 10, 0.33, "unseen"))
    watch.frame(11)
    watch.hub.close()  # the watch ended: every viewer gets what is left, then the end
    for v in viewers:
        left = wait_for(lambda v=v: v.closed)
        assert left
        parts_left = v.take()
        assert parts_left is not None and b'"kind":"track_end"' in parts_left[0]
        assert v.take() is None
    assert feeds.feed("s2") is None


def test_a_viewer_that_stops_taking_parts_is_let_go() -> None:
    import anyio

    from facelens.service.live import LiveResponse

    left: list[str] = []

    async def parts_forever() -> Any:
        try:
            while True:
                yield b"part"
                await anyio.sleep(0)
        finally:
            left.append("generator closed")  # where the route's viewer leaves its feed

    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)
        if len(sent) > 3:  # the client stops reading: the send never completes
            await anyio.sleep_forever()

    async def main() -> float:
        t0 = time.monotonic()
        with anyio.fail_after(10):
            await LiveResponse(parts_forever(), 0.2).stream_response(send)
        return time.monotonic() - t0

    took = anyio.run(main)
    assert left == ["generator closed"] and 0.2 <= took < 5
    # the answer was left unfinished, so the server closes the connection
    assert sent[-1]["type"] == "http.response.body" and sent[-1]["more_body"] is True


# -- the Live page ---------------------------------------------------------------------------


@pytest.fixture
def page(browser: Any, service: Service) -> Iterator[Any]:
    p, rec = open_page(browser, 1280, 1000)
    p.recorded = rec
    yield p
    p.context.close()


def canvas_pixels(page: Any) -> np.ndarray:
    png = page.locator(".live-tile canvas").first.screenshot()
    return picture(png)


def test_the_live_page_shows_the_picture_changing_with_names_and_a_strip_of_faces(
    page: Any, service: Service, stage: Path
) -> None:
    sign_in(page, service.url, service.keys["admin"])
    page.select_option("#gallery-select", "stage")
    page.click("button[data-tab=live]")
    page.wait_for_selector("#live-empty:not([hidden])")
    page.fill("#stream-source", str(stage))
    page.click("#stream-form button[type=submit]")
    page.wait_for_function(
        "() => Number(document.querySelector('.live-tile canvas')?.dataset.frame ?? -1) >= 0",
        timeout=60_000,
    )
    first = canvas_pixels(page)
    first_frame = int(page.get_attribute(".live-tile canvas", "data-frame"))
    # a name drawn on a face (the labels drawn are listed under the picture too)
    page.wait_for_function(
        "() => document.querySelector('.live-tile canvas')"
        ".dataset.labels.includes('Lin-Manuel Miranda')",
        timeout=120_000,
    )
    shot(page, "40-live-view")
    assert "Lin-Manuel Miranda" in page.inner_text(".live-tile .live-faces")
    page.wait_for_function(
        "f => Number(document.querySelector('.live-tile canvas').dataset.frame) > f",
        arg=first_frame + 30,
    )
    later = canvas_pixels(page)
    # a second of video later the picture is another one: many of its pixels changed
    changed = np.abs(first.astype(int) - later.astype(int)).max(axis=2) > 25
    assert first.shape == later.shape and changed.mean() > 0.05, changed.mean()
    # the strip: the best shot of each track that ended (all of them when the clip ends)
    page.wait_for_selector("#face-strip li img", timeout=240_000)
    page.wait_for_selector(".live-tile.ended", timeout=240_000)
    strip = page.inner_text("#face-strip")
    assert "Lin-Manuel Miranda" in strip and "track" in strip
    imgs = page.eval_on_selector_all("#face-strip img", "els => els.map(e => e.naturalWidth)")
    assert imgs and min(imgs) > 0
    # a face in the strip opens its track's events
    page.click("#face-strip li:has-text('Lin-Manuel Miranda') button")
    page.wait_for_selector("#track-detail:not([hidden])")
    detail = page.inner_text("#track-detail")
    assert "track_started" in detail and "identified" in detail and "Lin-Manuel Miranda" in detail
    shot(page, "41-live-face-strip", full_page=True)
    assert axe_violations(page) == []
    assert page.recorded.csp == []
    # the key never travels in a URL
    assert not [u for u in page.recorded.requests if service.keys["admin"] in u]
    # leaving the page ends its live views
    page.click("button[data-tab=people]")
    assert page.locator(".live-tile").count() == 0


def test_several_streams_show_as_tiles_on_a_phone_too(
    browser: Any, service: Service, stage: Path
) -> None:
    ids = [start(service, stage), start(service, stage)]
    page, rec = open_page(browser, 390, 844)
    try:
        sign_in(page, service.url, service.keys["identify"])
        page.click("button[data-tab=live]")
        page.wait_for_function(
            "() => [...document.querySelectorAll('.live-tile canvas')]"
            ".filter(c => c.dataset.frame).length === 2",
            timeout=60_000,
        )
        assert sorted(
            page.eval_on_selector_all(".live-tile", "t => t.map(e => e.dataset.stream)")
        ) == sorted(ids)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        shot(page, "42-phone-live", full_page=True)
    finally:
        page.context.close()
        with service.client("admin") as c:
            for jid in ids:
                c.delete(f"/v1/streams/{jid}")
    assert rec.csp == []
