"""The HTTP API over real HTTP: every route, every auth outcome, erasure, audit."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.service.conftest import Service

from facelens import Pipeline


def photo(data: Path, rel: str) -> tuple[str, bytes, str]:
    p = data / "faces" / "face_recognition" / rel
    return (p.name, p.read_bytes(), "image/jpeg")


def no_embeddings(doc: Any) -> None:
    """No response carries an embedding: no such key, no 128-long list of floats."""
    if isinstance(doc, dict):
        assert "embedding" not in doc and "embeddings" not in doc and "vector" not in doc
        for v in doc.values():
            no_embeddings(v)
    elif isinstance(doc, list):
        assert not (len(doc) >= 64 and all(isinstance(x, float) for x in doc))
        for v in doc:
            no_embeddings(v)


def test_health_needs_no_key_and_reports_models_and_provider(service: Service) -> None:
    with service.client() as c:
        r = c.get("/v1/health")
    assert r.status_code == 200
    doc = r.json()
    assert {m["name"] for m in doc["models"]} >= {"dlib_resnet_v1", "dlib_mmod_v1"}
    assert all(len(m["sha256"]) == 64 for m in doc["models"])
    assert (doc["inference"]["detector"], doc["inference"]["embedder"]) == ("cpu", "cpu")


ROUTES = [
    ("POST", "/v1/detect"),
    ("POST", "/v1/verify"),
    ("POST", "/v1/galleries/g/identify"),
    ("GET", "/v1/galleries"),
    ("POST", "/v1/galleries"),
    ("GET", "/v1/galleries/g/identities"),
    ("POST", "/v1/galleries/g/identities"),
    ("GET", "/v1/galleries/g/identities/x"),
    ("PATCH", "/v1/galleries/g/identities/x"),
    ("DELETE", "/v1/galleries/g/identities/x"),
    ("GET", "/v1/galleries/g/identities/x/samples"),
    ("GET", "/v1/galleries/g/identities/x/consents"),
    ("POST", "/v1/galleries/g/identities/x/consents"),
    ("GET", "/v1/audit"),
    ("GET", "/v1/audit/verify"),
    ("GET", "/v1/audit/export"),
    ("GET", "/v1/audit/actions"),
    ("GET", "/v1/keys"),
    ("POST", "/v1/keys"),
    ("GET", "/v1/keys/me"),
    ("DELETE", "/v1/keys/x"),
    ("GET", "/v1/streams/sources"),
    ("POST", "/v1/streams"),
    ("GET", "/v1/streams"),
    ("GET", "/v1/govern/status"),
    ("POST", "/v1/govern/stop"),
    ("POST", "/v1/govern/resume"),
    ("GET", "/v1/streams/x"),
    ("DELETE", "/v1/streams/x"),
    ("GET", "/v1/events"),
    ("POST", "/v1/thermal/screen"),
]


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_a_valid_key(service: Service, method: str, path: str) -> None:
    with service.client() as c:
        assert c.request(method, path).status_code == 401
        bad = c.request(method, path, headers={"Authorization": "Bearer fl_nope_nope"})
        assert bad.status_code == 401 and bad.headers["www-authenticate"] == "Bearer"
        assert bad.json()["error"] == "unauthorized"


def test_every_route_is_in_the_openapi_document(service: Service) -> None:
    with service.client() as c:
        spec = c.get("/openapi.json").json()
    for method, path in ROUTES:
        templ = path.replace("/g/", "/{gallery}/").replace("/x/", "/{identity_id}/")
        if templ.endswith("/x"):
            ids = {"streams": "/{stream_id}", "keys": "/{key_id}"}
            templ = templ[:-2] + next((v for k, v in ids.items() if k in templ), "/{identity_id}")
        assert method.lower() in spec["paths"][templ], (method, templ)
    assert "/v1/health" in spec["paths"]


def test_missing_scope_is_403(service: Service, data: Path) -> None:
    with service.client("reader") as c:
        r = c.post("/v1/galleries/main/identify", files={"image": photo(data, "obama.jpg")})
        assert r.status_code == 403 and "'identify' scope" in r.json()["detail"]
        assert c.get("/v1/audit").status_code == 403
        assert c.post("/v1/streams", json={"source": "x", "gallery": "main"}).status_code == 403


def test_enrol_identify_erase_and_audit(service: Service, data: Path) -> None:
    knn = data / "faces" / "face_recognition" / "knn_examples"
    with service.client("enroll") as c:
        r = c.post("/v1/galleries", json={"name": "office"})
        assert r.status_code == 201
        r = c.post(
            "/v1/galleries/office/identities",
            data={
                "name": "Barack Obama",
                "consent_purpose": "door",
                "consent_granted_by": "Barack Obama",
            },
            files=[
                ("images", (p.name, p.read_bytes(), "image/jpeg"))
                for p in sorted((knn / "train" / "obama").iterdir())
            ],
        )
        assert r.status_code == 201, r.text
        enrolled = r.json()
        no_embeddings(enrolled)
        oid = enrolled["identity"]["id"]
        assert enrolled["added"] == 2 and enrolled["identity"]["consent_valid"]
        r = c.post(
            "/v1/galleries/office/identities",
            data={"name": "Someone"},
            files={"images": photo(data, "biden.jpg")},
        )
        assert r.status_code == 422 and r.json()["error"] == "refused_by_policy"

        r = c.post(
            "/v1/galleries/office/identify",
            files={"image": ("o.jpg", (knn / "test" / "obama1.jpg").read_bytes(), "image/jpeg")},
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        no_embeddings(doc)
        assert [f["identity"]["name"] for f in doc["faces"]] == ["Barack Obama"]
        score = doc["faces"][0]["identity"]["score"]
        assert score == round(score, 4)
        # one person enrolled: the plain size-aware similarity threshold decides
        assert doc["rule"]["name"] == "open_set" and not doc["rule"]["normalised"]
        assert doc["faces"][0]["decision_score"] == score >= doc["threshold"]

        samples = c.get(f"/v1/galleries/office/identities/{oid}/samples").json()
        # two images, each with a template per model of the default (a fusion: three)
        images = {x["image_sha256"] for x in samples}
        assert len(images) == 2 and "inter_eye_px" in samples[0]["quality"]
        no_embeddings(samples)

        receipt = c.delete(f"/v1/galleries/office/identities/{oid}").json()
        assert receipt["samples_deleted"] == len(samples) and receipt["consents_deleted"] == 1
        time.sleep(0.6)  # identify is rate-limited (2/s) in this test service
        r = c.post(
            "/v1/galleries/office/identify",
            files={"image": ("o.jpg", (knn / "test" / "obama1.jpg").read_bytes(), "image/jpeg")},
        )
        assert [f["identity"] for f in r.json()["faces"]] == [None]  # erased: unknown now
        assert c.get(f"/v1/galleries/office/identities/{oid}").status_code == 404

        audit = c.get("/v1/audit").json()
        actions = [a["action"] for a in audit]
        # the enrolment refused for want of consent left its record too (who, what, why)
        assert actions[-5:] == ["enroll", "enroll_refused", "identify", "delete", "identify"]
        assert "no consent record" in audit[-4]["decision"]["why"]
        deletion = audit[-2]
        assert deletion["decision"]["receipt"]["identity_id"] == oid
        assert deletion["seq"] == receipt["audit_seq"] and deletion["hash"] == receipt["audit_hash"]
        ident = audit[-3]
        assert ident["probe_sha256"] and ident["model"] and ident["threshold"] is not None
        assert c.get("/v1/audit/verify").json() == {
            "ok": True,
            "checked": len(audit),
            "first_bad_seq": None,
            "problem": "",
        }


def test_candidates_need_their_own_scope_and_are_audited(service: Service, data: Path) -> None:
    knn = data / "faces" / "face_recognition" / "knn_examples"
    with service.client("admin") as c:
        r = c.post(
            "/v1/galleries/cands/identities",
            data={"name": "Barack Obama", "consent_purpose": "p", "consent_granted_by": "BO"},
            files=[
                ("images", (p.name, p.read_bytes(), "image/jpeg"))
                for p in sorted((knn / "train" / "obama").iterdir())
            ],
        )
        assert r.status_code == 201, r.text
    obama = ("o.jpg", (knn / "test" / "obama1.jpg").read_bytes(), "image/jpeg")
    stranger = photo(data, "biden.jpg")

    def faces(key: str, image: object) -> list[dict[str, object]]:
        with service.client(key) as c:
            r = c.post("/v1/galleries/cands/identify", files={"image": image})
            assert r.status_code == 200, r.text
            return r.json()["faces"]  # type: ignore[no-any-return]

    # without the scope: only the decided identity is named; a stranger is like no one
    (known,) = faces("enroll", obama)  # a key with identify, not candidates
    assert known["identity"]["name"] == "Barack Obama" and known["candidates"] == []  # type: ignore[index]
    (unknown,) = faces("enroll", stranger)
    assert unknown["identity"] is None and unknown["candidates"] == []
    # with it: who the stranger looks most like, and the audit trail says it was shown
    (unknown,) = faces("candidates", stranger)
    assert unknown["identity"] is None
    assert [c["name"] for c in unknown["candidates"]] == ["Barack Obama"]  # type: ignore[attr-defined]
    with service.client("enroll") as c:
        shown = [
            a["decision"]["candidates_shown"]
            for a in c.get("/v1/audit", params={"limit": 1000}).json()
            if a["action"] == "identify" and a["gallery"] == "cands"
        ]
    assert shown == [False, False, True]


def test_other_tenants_see_nothing(service: Service, data: Path) -> None:
    with service.client("admin") as c:
        c.post("/v1/galleries", json={"name": "private"})
        r = c.post(
            "/v1/galleries/private/identities",
            data={"name": "Joe", "consent_purpose": "p", "consent_granted_by": "Joe"},
            files={"images": photo(data, "biden.jpg")},
        )
        jid = r.json()["identity"]["id"]
    with service.client("other") as c:
        assert "private" not in [g["name"] for g in c.get("/v1/galleries").json()]
        for method, path in [
            ("GET", "/v1/galleries/private/identities"),
            ("GET", f"/v1/galleries/private/identities/{jid}"),
            ("DELETE", f"/v1/galleries/private/identities/{jid}"),
        ]:
            assert c.request(method, path).status_code == 404
        r = c.post("/v1/galleries/private/identify", files={"image": photo(data, "biden.jpg")})
        assert r.status_code == 404


def test_a_tenants_audit_trail_tells_nothing_of_another_tenants(service: Service) -> None:
    """Each tenant's records are numbered and chained on their own: globex's numbers have no
    gaps where acme acted, its check counts its own records, and a record of acme's edited
    in the store breaks acme's check only."""
    import sqlite3

    with service.client("other") as globex, service.client("admin") as acme:
        start = len(globex.get("/v1/audit", params={"limit": 1000}).json())
        for _ in range(2):
            assert globex.post("/v1/govern/stop", json={"reason": "drill"}).status_code == 200
            assert globex.post("/v1/govern/resume").status_code == 200
            for _ in range(3):  # acme busy in between
                assert acme.post("/v1/govern/stop", json={"reason": "drill"}).status_code == 200
                assert acme.post("/v1/govern/resume").status_code == 200
        seqs = [r["seq"] for r in globex.get("/v1/audit", params={"limit": 1000}).json()]
        assert seqs == list(range(1, start + 5))
        assert globex.get("/v1/audit/verify").json() == {
            "ok": True,
            "checked": start + 4,
            "first_bad_seq": None,
            "problem": "",
        }
        last = acme.get("/v1/audit", params={"order": "desc", "limit": 1}).json()[0]
        db = sqlite3.connect(service.store_path)
        try:
            db.execute(
                "UPDATE audit SET key_id = 'forged' WHERE tenant = 'acme' AND seq = ?",
                (last["seq"],),
            )
            db.commit()
            broken = acme.get("/v1/audit/verify").json()
            assert not broken["ok"] and broken["first_bad_seq"] == last["seq"]
            assert globex.get("/v1/audit/verify").json()["ok"] is True
        finally:
            db.execute(
                "UPDATE audit SET key_id = ? WHERE tenant = 'acme' AND seq = ?",
                (last["key_id"], last["seq"]),
            )
            db.commit()
            db.close()
        assert acme.get("/v1/audit/verify").json()["ok"] is True


def test_identify_is_rate_limited_per_key(service: Service, data: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with service.client("admin") as c:
        c.post("/v1/galleries", json={"name": "rl"})
    small = (
        "s.jpg",
        (data / "faces" / "face_recognition" / "obama_small.jpg").read_bytes(),
        "image/jpeg",
    )

    def call(_: int) -> tuple[int, str | None]:
        with service.client("identify") as c:
            r = c.post("/v1/galleries/rl/identify", files={"image": small})
            return r.status_code, r.headers.get("retry-after")

    with ThreadPoolExecutor(8) as pool:  # 8 at once against a burst of 3
        results = list(pool.map(call, range(8)))
    codes = [c for c, _ in results]
    assert codes.count(200) >= 3 and 429 in codes
    assert all(int(r) >= 1 for c, r in results if c == 429 and r is not None)
    assert all(r is not None for c, r in results if c == 429)
    with service.client("admin") as c:  # another key has its own budget
        r = c.post("/v1/galleries/rl/identify", files={"image": small})
        assert r.status_code == 200


def test_bad_input_is_a_clear_4xx(service: Service, data: Path) -> None:
    with service.client("admin") as c:
        r = c.post("/v1/detect", files={"image": ("x.jpg", b"not an image", "image/jpeg")})
        assert r.status_code == 400 and "not a supported image" in r.json()["detail"]
        r = c.post("/v1/detect", data={"image_url": "http://example.com/a.jpg"})
        assert r.status_code == 400 and r.json()["error"] == "image_urls_disabled"
        assert c.post("/v1/galleries", json={"name": "no spaces"}).status_code == 422
        r = c.post(
            "/v1/verify",
            files={
                "image_a": photo(data, "obama.jpg"),
                "image_b": ("d.jpg", (data / "detection" / "dogs.jpg").read_bytes(), "image/jpeg"),
            },
        )
        assert r.status_code == 422 and r.json()["reasons"] == ["no_face"]


def test_verify(service: Service, data: Path) -> None:
    with service.client("reader") as c:
        r = c.post(
            "/v1/verify",
            files={"image_a": photo(data, "obama.jpg"), "image_b": photo(data, "obama2.jpg")},
        )
        assert r.status_code == 200 and r.json()["same"] is True
        r = c.post(
            "/v1/verify",
            files={"image_a": photo(data, "obama.jpg"), "image_b": photo(data, "biden.jpg")},
        )
        assert r.json()["same"] is False


def test_stream_job_events_over_sse(service: Service, data: Path) -> None:
    import threading

    clip = data / "video" / "hamilton_clip.mp4"
    started: dict[str, str] = {}

    def start_job() -> None:
        time.sleep(1.0)  # after the event stream below is connected
        with service.client("admin") as c2:
            c2.post("/v1/galleries", json={"name": "cams"})
            r = c2.post(
                "/v1/streams", json={"source": str(clip), "gallery": "cams", "detect_every": 2}
            )
            started["status"] = str(r.status_code)
            started["id"] = r.json()["id"]

    threading.Thread(target=start_job, daemon=True).start()
    events: list[dict[str, Any]] = []
    with service.client("admin") as c:
        with c.stream("GET", "/v1/events", params={"max_seconds": 60}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            for line in r.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                    if events[-1]["type"] == "track_ended":
                        break
        assert started["status"] == "201"
        jid = started["id"]
        assert {"track_started", "track_ended"} <= {e["type"] for e in events}
        assert all(e["stream"] == jid for e in events)
        stopped = c.delete(f"/v1/streams/{jid}")  # stop it before the end of the clip
        assert stopped.status_code == 200 and stopped.json()["status"] in ("stopped", "finished")
    with service.client("other") as c:
        assert c.get(f"/v1/streams/{jid}").status_code == 404


def test_thermal_screening_route(service: Service, data: Path, tmp_path: Path) -> None:
    import numpy as np

    from facelens.thermal import decode_thermal

    lab = decode_thermal(next((data / "thermal" / "flir_radiometric").glob("09 - *.jpg")))
    c = lab.celsius.copy()
    c[2:10, 2:10] = 35.0  # a blackbody in view
    np.save(tmp_path / "lab.npy", c)
    form = {"blackbody": "2,2,10,10", "blackbody_temp": "35", "ambient": "21", "humidity": "45"}
    with service.client("reader") as cl:

        def screen(**extra: str) -> Any:
            with (tmp_path / "lab.npy").open("rb") as f:
                return cl.post(
                    "/v1/thermal/screen",
                    data=form | extra,
                    files={"frame": ("lab.npy", f, "application/octet-stream")},
                )

        r = screen()
        assert r.status_code == 200 and r.json()["refused"] == ["several_faces"]
        r = screen(region="138,20,172,70")
        doc = r.json()
        assert doc["outcome"] in ("clear", "refer") and "identity" not in doc
        with (data / "thermal" / "flir_radiometric").glob("07 - *.jpg").__next__().open("rb") as f:
            bad = cl.post(
                "/v1/thermal/screen", data=form, files={"frame": ("07.jpg", f, "image/jpeg")}
            )
        assert bad.status_code == 400 and "not a readable FLIR" in bad.json()["detail"]
        # named as the form field it came in, never as a server-side file
        assert "/tmp" not in bad.text and bad.json()["detail"].startswith("frame: ")
        # a .npy whose header claims 37 GiB in a few bytes: refused from the header
        header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"
        header += b" " * (63 - len(header) % 64) + b"\n"
        bomb = b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"\0" * 64
        r = cl.post("/v1/thermal/screen", data=form, files={"frame": ("bomb.npy", bomb)})
        assert r.status_code == 413 and r.json()["error"] == "image_too_large"


def test_stream_credentials_are_never_shown(service: Service) -> None:
    # nothing listens on port 9: the source fails, and its password is not in the answer
    source = "rtsp://admin:s3cret@127.0.0.1:9/stream1"
    with service.client("admin") as c:
        c.post("/v1/galleries", json={"name": "doorcam"})
        t0 = time.perf_counter()
        r = c.post("/v1/streams", json={"source": source, "gallery": "doorcam"})
        # started at once: the source is opened by the job, not the request (how long
        # opening takes would tell a closed port from a silent one)
        assert r.status_code == 201 and time.perf_counter() - t0 < 2, r.text
        assert "s3cret" not in r.text and "rtsp://***@127.0.0.1:9/stream1" in r.text
        for _ in range(300):
            job = c.get(f"/v1/streams/{r.json()['id']}").json()
            if job["status"] == "failed":
                break
            time.sleep(0.1)
        assert job["status"] == "failed" and "could not be opened" in job["error"]
        listed = c.get("/v1/streams")
        assert listed.status_code == 200 and "s3cret" not in listed.text


@pytest.mark.parametrize("after", ["99999999999999999999999", str(2**63), "-1", "x", "1e3"])
def test_audit_paging_outside_the_database_range_is_a_422(service: Service, after: str) -> None:
    with service.client("enroll") as c:
        r = c.get("/v1/audit", params={"after": after})
        assert r.status_code == 422, r.text
        assert {"error", "detail"} <= set(r.json())
        assert c.get("/v1/audit", params={"after": str(2**63 - 1)}).json() == []


def test_a_refused_enrolment_creates_no_gallery_and_errors_keep_their_shape(
    service: Service, data: Path
) -> None:
    img = photo(data, "obama.jpg")
    with service.client("enroll") as c:

        def names() -> set[str]:
            return {g["name"] for g in c.get("/v1/galleries").json()}

        before = names()
        many = [("images", img)] * 25
        r = c.post("/v1/galleries/left_empty/identities", data={"name": "x"}, files=many)
        assert r.status_code == 400 and r.json()["error"] == "bad_input"
        parts = [("images", ("x.jpg", b"x", "image/jpeg"))] * 1001  # over the parser's limit
        r = c.post("/v1/galleries/left_empty/identities", data={"name": "x"}, files=parts)
        assert r.status_code == 400 and set(r.json()) == {"error", "detail", "reasons"}
        assert "left_empty" not in names() and names() == before
        r = c.get("/v1/no/such/route")
        assert r.status_code == 404 and r.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "source",
    [
        "/etc/shadow",  # exists
        "/etc/no-such-file",  # does not
        "/proc/self/environ",
        "/dev/zero",
        "file:///etc/passwd",
        "0",  # the host's camera
        "rtsp://127.0.0.1:22/x",  # an open port (ssh)...
        "rtsp://127.0.0.1:1/x",  # ...and a closed one
        "http://169.254.169.254/latest/meta-data",
    ],
)
def test_streams_watch_only_what_the_operator_allows(
    service: Service, data: Path, source: str
) -> None:
    with service.client("admin") as c:
        c.post("/v1/galleries", json={"name": "cams"})
        t0 = time.perf_counter()
        r = c.post("/v1/streams", json={"source": source, "gallery": "cams"})
        assert r.status_code == 403 and r.json()["error"] == "source_not_allowed"
        assert time.perf_counter() - t0 < 2  # nothing was opened or dialled
        # the same answer whether the file exists or the port answers: no oracle
        assert r.json()["detail"] == (
            f"{source!r} is not an allowed stream source; the operator allows sources with "
            "facelens serve --allow-source PATTERN (make run ALLOW_SOURCE=PATTERN)"
        )
        # a path that climbs out of an allowed folder is judged where it lands
        escape = str(data / "video" / ".." / ".." / ".." / "etc" / "passwd")
        assert c.post("/v1/streams", json={"source": escape, "gallery": "cams"}).status_code == 403


def test_a_hundred_event_subscribers_stall_nothing(service: Service) -> None:
    import statistics
    import threading

    stop = threading.Event()
    connected = threading.Semaphore(0)

    def subscriber() -> None:
        with (
            service.client("identify") as c,
            c.stream("GET", "/v1/events", params={"max_seconds": 120}) as r,
        ):
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith(": connected"):
                    connected.release()
                if stop.is_set():
                    return

    threads = [threading.Thread(target=subscriber, daemon=True) for _ in range(100)]
    for t in threads:
        t.start()
    try:
        for _ in threads:
            assert connected.acquire(timeout=60)
        with service.client("identify") as c:
            # the 101st is turned away, not queued on a thread
            r = c.get("/v1/events")
            assert r.status_code == 503 and r.json()["error"] == "too_many_subscribers"
            assert r.headers["retry-after"] == "30"
            times = []
            for _ in range(10):
                t0 = time.perf_counter()
                assert c.get("/v1/health").status_code == 200
                times.append(time.perf_counter() - t0)
        # with each subscriber holding a worker thread, health took 5-6 s here
        assert statistics.median(times) < 0.1, times
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)  # each wakes at its next keep-alive (10 s) and leaves


def _raw(service: Service, head: bytes, body_chunks: Iterator[bytes] | None = None) -> bytes:
    """One HTTP/1.1 exchange on a plain socket: what a client sees, however little it sent."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(service.url)
    with socket.create_connection((u.hostname, u.port), timeout=30) as s:
        s.sendall(head)
        try:
            for chunk in body_chunks or ():
                s.sendall(chunk)
        except OSError:  # the server answered and closed while we were still sending
            pass
        data = b""
        while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
            part = s.recv(65536)
            if not part:
                break
            data += part
    return data


def test_a_huge_body_is_refused_before_it_is_read_or_its_key_checked(service: Service) -> None:
    # declared: 100 MB, no key, nothing sent - answered at once, from the header
    t0 = time.perf_counter()
    head = (
        b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; "
        b"boundary=b\r\nContent-Length: 100000000\r\n\r\n"
    )
    out = _raw(service, head)
    assert out.startswith(b"HTTP/1.1 413") and b'"body_too_large"' in out
    assert time.perf_counter() - t0 < 2
    # streamed without a length: cut off once it passes the limit (32 MiB), with a key
    key = service.keys["reader"].encode()
    head = (
        b"POST /v1/detect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + key + b"\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    mib = b"x" * (1 << 20)

    def chunks() -> Iterator[bytes]:
        part = b'--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
        for piece in [part] + [mib] * 100:  # 100 MiB offered, each piece a chunk
            yield b"%x\r\n" % len(piece) + piece + b"\r\n"

    out = _raw(service, head, chunks())
    assert out.startswith(b"HTTP/1.1 413") and b'"body_too_large"' in out


def test_the_stop_control_halts_identification_until_resumed(service: Service, data: Path) -> None:
    clip = data / "video" / "hamilton_clip.mp4"
    with service.client("admin") as admin:
        admin.post("/v1/galleries", json={"name": "halt"})
        job = admin.post("/v1/streams", json={"source": str(clip), "gallery": "halt"}).json()
        with service.client("identify") as c:
            assert c.post("/v1/govern/stop", json={}).status_code == 403  # admin only
        try:
            r = admin.post("/v1/govern/stop", json={"reason": "drill"})
            assert r.status_code == 200 and r.json()["stopped"] and r.json()["reason"] == "drill"
            with service.client("identify") as c:
                r = c.post("/v1/galleries/halt/identify", files={"image": photo(data, "obama.jpg")})
                assert r.status_code == 423 and r.json()["error"] == "identification_stopped"
                assert "drill" in r.json()["detail"]
                assert c.get("/v1/govern/status").json()["stopped"] is True
                # stopped, the answer says nothing of which galleries exist
                r = c.post(
                    "/v1/galleries/nosuch/identify", files={"image": photo(data, "obama.jpg")}
                )
                assert r.status_code == 423
            r = admin.post("/v1/streams", json={"source": str(clip), "gallery": "halt"})
            assert r.status_code == 423
            # the running stream stops naming: it ends within seconds, saying why
            deadline = time.time() + 20
            while time.time() < deadline:
                st = admin.get(f"/v1/streams/{job['id']}").json()
                if st["status"] != "running" and st["status"] != "starting":
                    break
                time.sleep(0.2)
            assert st["status"] == "stopped" and "stopped by the operator" in st["error"]
        finally:
            r = admin.post("/v1/govern/resume")
        assert r.status_code == 200 and r.json()["stopped"] is False
        with service.client("identify") as c:
            r = c.post("/v1/galleries/halt/identify", files={"image": photo(data, "obama.jpg")})
            assert r.status_code == 200
            r = c.post("/v1/galleries/nosuch/identify", files={"image": photo(data, "obama.jpg")})
            assert r.status_code == 404
    with service.client("enroll") as c:
        trail = c.get("/v1/audit", params={"limit": 1000}).json()
    actions = [a["action"] for a in trail]
    assert "stop" in actions and "resume" in actions
    # the refusals are in the trail too: who was refused what, and why
    refused = [a["action"] for a in trail if "drill" in a["decision"].get("why", "")]
    # (identify on "halt" and on a gallery that does not exist: refused alike)
    assert refused.count("identify_refused") == 2 and refused.count("stream_start_refused") == 1
    # and the running stream's next search, if it searched before it ended
    assert set(refused) <= {"identify_refused", "stream_start_refused", "stream_search_refused"}
    # the stream's period of use: when it began and ended, against which gallery, and why
    period = [a for a in trail if a["decision"].get("stream") == job["id"]]
    assert [a["action"] for a in period] == ["stream_start", "stream_stop"]
    assert all(a["gallery"] == "halt" for a in period)
    assert "stopped by the operator" in period[1]["decision"]["ended"]
    assert actions.index("stop") < len(actions) - 1 - actions[::-1].index("resume")


def test_the_stop_control_from_the_command_line_reaches_the_service(service: Service) -> None:
    import json
    import subprocess
    import sys

    def govern(*argv: str) -> dict[str, object]:
        p = subprocess.run(
            [
                *(sys.executable, "-m", "facelens", "govern", *argv),
                *("--tenant", "acme", "--gallery", str(service.store_path), "--json"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)  # type: ignore[no-any-return]

    try:
        assert govern("stop", "--reason", "incident 42")["stopped"] is True
        with service.client("identify") as c:
            assert c.get("/v1/govern/status").json()["reason"] == "incident 42"
    finally:
        assert govern("resume")["stopped"] is False
    assert govern("status")["stopped"] is False


def test_the_cli_names_a_tenants_gallery_and_erases_from_it(
    service: Service, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone enrolled through the service is listed and erased by the command line
    (``--tenant acme --gallery-name lobby``), audited once in the tenant's own trail."""
    import getpass

    from facelens.cli.main import main

    knn = data / "faces" / "face_recognition" / "knn_examples"
    with service.client("enroll") as c:
        assert c.post("/v1/galleries", json={"name": "lobby"}).status_code == 201
        r = c.post(
            "/v1/galleries/lobby/identities",
            data={"name": "Barack Obama", "consent_purpose": "door", "consent_granted_by": "B"},
            files=[
                ("images", (p.name, p.read_bytes(), "image/jpeg"))
                for p in sorted((knn / "train" / "obama").iterdir())
            ],
        )
        assert r.status_code == 201, r.text
        oid = r.json()["identity"]["id"]
    where = ["--gallery", str(service.store_path), "--tenant", "acme", "--gallery-name", "lobby"]
    capsys.readouterr()
    assert main(["gallery", "list", *where, "--json"]) == 0
    assert [i["id"] for i in json.loads(capsys.readouterr().out)] == [oid]
    # the CLI's own gallery and another tenant's are other galleries
    assert main(["gallery", "list", "--gallery", str(service.store_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["gallery", "list", *where[:2], "--tenant", "globex", "--gallery-name",
                 "lobby", "--json"]) == 5  # fmt: skip
    assert main(["gallery", "list", *where[:2], "--tenant", "../acme", "--json"]) == 2
    capsys.readouterr()
    assert main(["gallery", "delete", "Barack Obama", "--yes", *where, "--json"]) == 0
    receipt = json.loads(capsys.readouterr().out)
    # two images, every template of each erased (three per image for a fusion default)
    parts = len(Pipeline().embedder.parts)
    per_image = parts + (parts > 1)
    assert receipt["identity_id"] == oid and receipt["samples_deleted"] == 2 * per_image
    with service.client("enroll") as c:
        assert c.get(f"/v1/galleries/lobby/identities/{oid}").status_code == 404
        trail = c.get("/v1/audit").json()
        erased = [a for a in trail if a["action"] == "delete" and oid in a["candidates"]]
        assert len(erased) == 1
        assert erased[0]["key_id"] == f"cli:{getpass.getuser()}"
        assert erased[0]["tenant"] == "acme" and erased[0]["gallery"] == "lobby"
        assert c.get("/v1/audit/verify").json()["ok"] is True


def test_another_persons_photos_and_look_alike_names_are_refused(
    service: Service, data: Path
) -> None:
    knn = data / "faces" / "face_recognition" / "knn_examples"

    def enrol(c: Any, name: str, who: str, **form: str) -> Any:
        files = [("images", photo(data, f"knn_examples/train/{who}/{p.name}"))
                 for p in sorted((knn / "train" / who).iterdir())]  # fmt: skip
        return c.post("/v1/galleries/guard/identities", data={"name": name, **form}, files=files)

    consent = {"consent_purpose": "door", "consent_granted_by": "self"}
    with service.client("enroll") as c:
        assert c.post("/v1/galleries", json={"name": "guard"}).status_code == 201
        r = enrol(c, "obama", "obama", **consent)
        assert r.status_code == 201
        oid = r.json()["identity"]["id"]
        r = enrol(c, "obama", "biden")  # Biden's photos for Obama
        assert r.status_code == 409 and r.json()["error"] == "identity_mismatch"
        assert "strict threshold" in r.json()["detail"]
        r = enrol(c, "obama", "biden", override_face_check="the operator is sure")
        assert r.status_code == 403 and "enroll:override" in r.json()["detail"]
        assert c.get(f"/v1/galleries/guard/identities/{oid}").json()["samples"] == 2
        r = enrol(c, "\u041ebama", "biden", **consent)  # Cyrillic O
        assert r.status_code == 409 and "looks the same as 'obama'" in r.json()["detail"]
        r = enrol(c, "bid\u2028en", "biden", **consent)
        assert r.status_code == 400 and "U+2028" in r.json()["detail"]
        r = enrol(c, "biden", "biden", **{**consent, "consent_purpose": "door\u202e"})
        assert r.status_code == 400 and "U+202E" in r.json()["detail"]
        bid = enrol(c, "biden", "biden", **consent).json()["identity"]["id"]
        r = c.patch(f"/v1/galleries/guard/identities/{bid}", json={"name": oid})
        assert r.status_code == 400 and "that is an id" in r.json()["detail"]
        trail = [a["action"] for a in c.get("/v1/audit", params={"limit": 1000}).json()]
    with service.client("admin") as admin:  # admin holds enroll:override
        r = enrol(admin, "obama", "biden", override_face_check="the operator is sure")
        assert r.status_code == 201 and r.json()["added"] == 2
        rec = admin.get("/v1/audit", params={"limit": 1000}).json()[-1]
    assert rec["action"] == "enroll_override" and rec["decision"]["override"]
    assert trail[-6:] == [
        "enroll",
        "enroll_refused",  # Biden's photos for Obama
        "enroll_refused",  # the look-alike name
        "enroll_refused",  # U+2028 in the name
        "enroll",  # (the purpose with U+202E was refused as bad input, before the gallery)
        "rename_refused",
    ]


def test_the_command_line_and_the_service_answer_in_one_shape(
    service: Service, data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``facelens detect|identify|verify --json`` and /v1/detect, /identify, /verify say the
    same of the same photo: the same keys, values and rounding (facelens.results)."""
    from facelens.cli.main import main

    fr = data / "faces" / "face_recognition"
    knn = fr / "knn_examples"
    group = knn / "test" / "obama_and_biden.jpg"  # three faces, two of them enrolled below

    def cli(*argv: object) -> Any:
        capsys.readouterr()
        assert main([*map(str, argv), "--json"]) == 0
        return json.loads(capsys.readouterr().out)

    def upload(p: Path) -> tuple[str, bytes, str]:
        return (p.name, p.read_bytes(), "image/jpeg")

    with service.client("enroll") as c:
        c.post("/v1/galleries", json={"name": "shape"})
        for who in ("obama", "biden"):
            files = [("images", upload(p)) for p in sorted((knn / "train" / who).iterdir())]
            form = {"name": who, "consent_purpose": "door", "consent_granted_by": who}
            assert c.post("/v1/galleries/shape/identities", data=form, files=files).is_success
    with service.client("candidates") as c:
        served = c.post("/v1/galleries/shape/identify", files={"image": upload(group)}).json()
    where = ["--gallery", service.store_path, "--tenant", "acme", "--gallery-name", "shape"]
    (printed,) = cli("identify", group, *where, "--candidates")
    assert printed.pop("image") == str(group) and served.pop("audit_seq") > 0
    assert printed == served
    assert sorted(f["identity"]["name"] for f in served["faces"] if f["identity"]) == [
        "biden",
        "obama",
    ]

    with service.client("reader") as c:
        served = c.post("/v1/detect", files={"image": upload(group)}).json()
        (printed,) = cli("detect", group, "--quality")
        assert printed.pop("image") == str(group) and printed == served
        assert len(served["faces"]) == 3

        # verify: an image of several faces compares its largest, and says so
        two, one = fr / "two_people.jpg", fr / "obama.jpg"
        files = {"image_a": upload(two), "image_b": upload(one)}
        served = c.post("/v1/verify", files=files).json()
        printed = cli("verify", two, one)
        assert printed.pop("image_a") == str(two) and printed.pop("image_b") == str(one)
        assert served.pop("audit_seq") > 0 and printed == served
        assert len(served["faces_a"]) == 2 and served["chosen_a"] == "largest"
        assert len(served["faces_b"]) == 1 and served["face_b"] == 0
        other = 1 - served["face_a"]  # the other face of the two
        asked = c.post("/v1/verify", files=files, data={"face_a": str(other)}).json()
        printed = cli("verify", two, one, "--face-a", other)
        assert asked["face_a"] == printed["face_a"] == other and asked["chosen_a"] == "asked"
        assert asked["similarity"] == printed["similarity"] != served["similarity"]
        r = c.post("/v1/verify", files=files, data={"face_a": "2"})
        assert r.status_code == 400 and "the photo has 2" in r.json()["detail"]
