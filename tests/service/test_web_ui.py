"""The operator's web UI as a person uses it, in Debian's chromium (Playwright): verify two
photos, read and filter the audit log and export it, create and revoke keys, the API
reference, a 390 px phone; on every page axe-core finds no serious or critical issue, no
request leaves the service's origin and the Content-Security-Policy refuses nothing. And the
API behind those pages: security headers, keys, the readable audit trail, verify's choice
of face. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

import csv
import io
import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.service.conftest import Service
from tests.service.ui import axe_violations, open_page, shot, sign_in

from facelens.gallery import SqliteStore
from facelens.govern import AuditLog

STATIC = Path(__file__).resolve().parents[2] / "src" / "facelens" / "service" / "static"
PAGES = ("people", "identify", "verify", "archive", "live", "alerts", "audit", "keys", "privacy")


def _photo(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "image/jpeg")


@pytest.fixture(scope="module")
def trail(service: Service, data: Path) -> dict[str, Any]:
    """What the pages show: Barack Obama enrolled in `door`, a search that names him, a
    comparison, the stop control used (older records spell a key `key:ID`)."""
    knn = data / "faces" / "face_recognition" / "knn_examples"
    with service.client("admin") as c:
        assert c.post("/v1/galleries", json={"name": "door"}).status_code == 201
        r = c.post(
            "/v1/galleries/door/identities",
            data={"name": "Barack Obama", "consent_purpose": "door", "consent_granted_by": "B"},
            files=[("images", _photo(p)) for p in sorted((knn / "train" / "obama").iterdir())],
        )
        assert r.status_code == 201, r.text
        obama = r.json()["identity"]["id"]
        r = c.post("/v1/galleries/door/identify", files={"image": _photo(knn / "test/obama1.jpg")})
        assert r.json()["faces"][0]["identity"]["name"] == "Barack Obama"
        assert c.post("/v1/govern/stop", json={"reason": "drill"}).status_code == 200
        assert c.post("/v1/govern/resume").status_code == 200
        admin_id = c.get("/v1/keys/me").json()["id"]
    # a record as the service wrote it before keys had one spelling
    with SqliteStore(service.store_path) as store:
        AuditLog(store).append(
            tenant="acme",
            key_id=f"key:{admin_id}",
            action="retention_policy",
            gallery="door",
            decision={"old": {}, "new": {"max_idle_days": 30, "consent_grace_days": 0}},
        )
    with service.client("reader") as c:
        faces = data / "faces" / "face_recognition"
        r = c.post(
            "/v1/verify",
            files={"image_a": _photo(faces / "obama.jpg"), "image_b": _photo(faces / "biden.jpg")},
        )
        assert r.status_code == 200
    return {"obama": obama, "admin": admin_id}


# -- the API behind the pages --------------------------------------------------------------


def test_every_answer_carries_the_security_headers(service: Service) -> None:
    with service.client() as c:
        answers = [
            c.get("/"),
            c.get("/docs"),
            c.get("/static/app.js"),
            c.get("/openapi.json"),
            c.get("/v1/health"),
            c.get("/v1/galleries"),  # 401
            c.get("/no/such/page"),  # 404
        ]
        favicon = c.get("/favicon.ico")
    assert [r.status_code for r in answers] == [200, 200, 200, 200, 200, 401, 404]
    # a body refused from its declared length, before anything is read
    host, port = service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /v1/verify HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n")
        head = sock.recv(65536).decode().lower()
    assert head.startswith("http/1.1 413") and "\r\nx-frame-options: deny\r\n" in head
    assert "\r\ncontent-security-policy: default-src 'none';" in head
    for r in answers:
        csp = r.headers["content-security-policy"]
        assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp, r.url
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "no-referrer"
    assert favicon.status_code == 200 and favicon.headers["content-type"] == "image/svg+xml"


def test_the_pages_hold_no_inline_script_style_or_handler() -> None:
    """What the CSP would refuse, found in the files before a browser does."""
    for name in ("index.html", "docs.html", "app.js", "docs.js"):
        text = (STATIC / name).read_text()
        assert not re.search(r"\son[a-z]+\s*=", text), name  # onclick=...
        assert not re.search(r"\sstyle\s*=", text), name
        assert "javascript:" not in text, name
    for name in ("index.html", "docs.html"):
        scripts = re.findall(r"<script([^>]*)>", (STATIC / name).read_text())
        assert scripts and all("src=" in s for s in scripts), name


def test_keys_are_created_once_listed_and_revoked(service: Service) -> None:
    with service.client("admin") as admin:
        r = admin.post("/v1/keys", json={"name": "front desk", "scopes": ["identify", "verify"]})
        assert r.status_code == 201 and r.headers["cache-control"] == "no-store"
        made = r.json()
        secret, kid = made["secret"], made["key"]["id"]
        assert secret.startswith(f"fl_{kid}_") and made["key"]["scopes"] == ["identify", "verify"]
        listed = {k["id"]: k for k in admin.get("/v1/keys").json()}
        assert "secret" not in listed[kid] and listed[kid]["revoked_at"] is None
        assert [k["current"] for k in listed.values()].count(True) == 1
        me = admin.get("/v1/keys/me").json()
        assert me["current"] and me["scopes"] == ["admin"] and me["tenant"] == "acme"
        assert admin.delete(f"/v1/keys/{me['id']}").status_code == 409  # never itself
        assert admin.post("/v1/keys", json={"scopes": ["root"]}).status_code == 400
        with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {secret}"}) as c:
            assert c.get("/v1/keys/me").json()["name"] == "front desk"
            assert c.get("/v1/keys").status_code == 403  # not an admin
        with service.client("other") as globex:  # another tenant's admin
            assert globex.delete(f"/v1/keys/{kid}").status_code == 404
            assert kid not in {k["id"] for k in globex.get("/v1/keys").json()}
        r = admin.delete(f"/v1/keys/{kid}")
        assert r.status_code == 200 and r.json()["revoked_at"]
        assert admin.delete(f"/v1/keys/{kid}").status_code == 404
        with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {secret}"}) as c:
            assert c.get("/v1/keys/me").status_code == 401
        done = admin.get("/v1/audit", params={"action": ["key_created", "key_revoked"]}).json()
    mine = [r for r in done if r["decision"].get("key") == kid]
    assert [r["action"] for r in mine] == ["key_created", "key_revoked"]
    assert mine[0]["actor"] == me["id"]
    assert mine[1]["sentence"] == (
        f"key {me['id']} revoked key {kid} (front desk) with scopes identify, verify."
    )


def test_the_audit_trail_reads_as_sentences_filtered_paged_and_exported(
    service: Service, trail: dict[str, Any]
) -> None:
    with service.client("enroll") as c:  # an audit:read key of the tenant
        found = c.get("/v1/audit", params={"action": "identify"}).json()
        assert found and {r["action"] for r in found} == {"identify"}
        ours = [r for r in found if r["gallery"] == "door"]
        assert ours[0]["names"] == {trail["obama"]: "Barack Obama"}
        assert ours[0]["sentence"] == (
            f"key {trail['admin']} searched door with a photo of 1 face: identified "
            "Barack Obama (candidate lists shown)."
        )
        # one key format, whichever way a record spelt the key
        by_admin = c.get("/v1/audit", params={"key": trail["admin"]}).json()
        assert {"stop", "resume", "enroll", "identify", "retention_policy"} <= {
            r["action"] for r in by_admin
        }
        assert {r["actor"] for r in by_admin} == {trail["admin"]}
        old = next(r for r in by_admin if r["key_id"] == f"key:{trail['admin']}")
        assert old["sentence"] == (
            f"key {trail['admin']} set the retention policy of door: erase after 30 days "
            "unmatched, 0 days after consent ends."
        )
        # newest first, a page at a time
        everything = c.get("/v1/audit", params={"limit": 1000}).json()
        r = c.get("/v1/audit", params={"order": "desc", "limit": 2})
        page1, nxt = r.json(), int(r.headers["x-next-before"])
        page2 = c.get("/v1/audit", params={"order": "desc", "limit": 2, "before": nxt}).json()
        seqs = [x["seq"] for x in everything][::-1]
        assert [x["seq"] for x in page1 + page2] == seqs[:4]
        # a time range
        t = everything[2]["time"]
        since = c.get("/v1/audit", params={"since": t, "limit": 1000}).json()
        assert since[0]["seq"] == everything[2]["seq"]
        until = c.get("/v1/audit", params={"until": t, "limit": 1000}).json()
        assert [x["seq"] for x in until] == [x["seq"] for x in everything[:2]]
        # exports: the same records, for an auditor
        r = c.get("/v1/audit/export", params={"format": "csv", "action": "identify"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [int(x["seq"]) for x in rows] == [x["seq"] for x in found]
        assert "Barack Obama" in rows[-1]["people"] and rows[-1]["sentence"]
        r = c.get("/v1/audit/export", params={"format": "json"})
        assert [x["seq"] for x in json.loads(r.text)] == [x["seq"] for x in everything]
        assert c.get("/v1/audit/actions").json()["identify"]
        assert c.get("/v1/audit", params={"since": "yesterday"}).status_code == 422
    with service.client("other") as c:  # another tenant: none of it
        assert c.get("/v1/audit", params={"action": "identify"}).json() == []


def test_verify_lists_every_face_and_compares_the_one_chosen(service: Service, data: Path) -> None:
    faces = data / "faces" / "face_recognition"
    pair = data / "faces" / "face_recognition" / "knn_examples" / "test" / "obama_and_biden.jpg"
    with service.client("reader") as c:
        r = c.post(
            "/v1/verify",
            files={"image_a": _photo(faces / "obama.jpg"), "image_b": _photo(faces / "obama2.jpg")},
        ).json()
        assert r["same"] and r["threshold_name"] == "balanced" and len(r["faces_a"]) == 1
        answers, boxes = [], []
        for i in range(3):  # Obama, Biden and a face in the crowd behind them
            r = c.post(
                "/v1/verify",
                files={"image_a": _photo(faces / "obama.jpg"), "image_b": _photo(pair)},
                data={"face_b": str(i), "threshold": "strict"},
            ).json()
            assert len(r["faces_b"]) == 3 and r["face_b"] == i and r["threshold_name"] == "strict"
            answers.append(r["same"])
            boxes.append(r["faces_b"][i][0])
        assert answers.count(True) == 1  # only Obama is Obama
        assert boxes == sorted(boxes)  # faces are numbered left to right
        r = c.post(
            "/v1/verify",
            files={"image_a": _photo(faces / "obama.jpg"), "image_b": _photo(pair)},
            data={"face_b": "3"},
        )
        assert r.status_code == 400 and "the photo has 3" in r.json()["detail"]


def test_the_allowed_sources_are_offered_to_admins(service: Service) -> None:
    with service.client("admin") as c:
        s = c.get("/v1/streams/sources").json()
    assert any(f.endswith("/video/hamilton_clip.mp4") for f in s["files"])
    assert "rtsp://127.0.0.1:9/*" in s["patterns"]
    with service.client("identify") as c:
        assert c.get("/v1/streams/sources").status_code == 403


# -- in the browser ------------------------------------------------------------------------


@pytest.fixture
def context_pages(browser: Any) -> Iterator[list[Any]]:
    """Pages opened by a test, closed after it whatever happened."""
    opened: list[Any] = []
    yield opened
    for p in opened:
        p.context.close()


def _signed_in(
    browser: Any, service: Service, pages: list[Any], key: str, width: int = 1280, height: int = 900
) -> tuple[Any, Any]:
    """A recording page signed in with ``key``, closed after the test."""
    page, rec = open_page(browser, width, height)
    pages.append(page)
    sign_in(page, service.url, service.keys[key])
    return page, rec


def test_sign_in_says_where_the_first_key_came_from(
    browser: Any, service: Service, context_pages: list[Any]
) -> None:
    page, rec = open_page(browser)
    context_pages.append(page)
    page.goto(service.url + "/")
    page.wait_for_selector("#sign-in")
    assert not page.is_visible("#sign-out")  # not before signing in
    assert "make run" in page.inner_text("#sign-in")
    assert axe_violations(page) == []
    shot(page, "20-sign-in")
    page.fill("#api-key", service.keys["reader"])
    page.click("#sign-in-form button")
    page.wait_for_selector("#app:not([hidden])")
    assert page.is_visible("#sign-out")
    # a key sees the pages its scopes allow (detect, verify)
    visible = page.eval_on_selector_all(
        ".tab", "els => els.filter(e => !e.hidden).map(e => e.dataset.tab)"
    )
    assert visible == ["people", "verify"]
    assert rec.foreign(service.url) == [] and rec.csp == []


def test_the_live_page_offers_stream_and_stop_controls_to_admin_keys_only(
    browser: Any, service: Service, context_pages: list[Any]
) -> None:
    # an identify key watches; starting, stopping and the stop control are admin's (the API
    # answers 403 to anyone else: the page does not offer what would be refused)
    controls = ["#stream-form", "#stop-toggle"]
    page, _ = _signed_in(browser, service, context_pages, "identify")
    page.click("[data-tab=live]")
    page.wait_for_selector("#tab-live:not([hidden])")
    assert [page.is_visible(c) for c in controls] == [False, False]
    assert "need an admin key" in page.inner_text("#stream-admin-only")
    admin, _ = _signed_in(browser, service, context_pages, "admin")
    admin.click("[data-tab=live]")
    admin.wait_for_selector("#tab-live:not([hidden])")
    assert [admin.is_visible(c) for c in controls] == [True, True]
    assert not admin.is_visible("#stream-admin-only")


def test_verify_page_says_same_person_for_two_photos_of_obama(
    browser: Any, service: Service, data: Path, context_pages: list[Any]
) -> None:
    faces = data / "faces" / "face_recognition"
    page, rec = _signed_in(browser, service, context_pages, "reader")
    page.click("button[data-tab=verify]")
    page.set_input_files("#verify-a", str(faces / "obama.jpg"))
    page.set_input_files("#verify-b", str(faces / "obama2.jpg"))
    page.click("#verify-form button[type=submit]")
    page.wait_for_selector(".verdict")
    assert page.inner_text(".verdict") == "Same person"
    text = page.inner_text("#verify-result")
    assert "balanced" in text and "Similarity 0." in text
    assert page.is_visible("#verify-canvas-a") and page.is_visible("#verify-canvas-b")
    shot(page, "21-verify-same-person", full_page=True)

    # several faces: the answer says so, and another face is one click away
    pair = faces / "knn_examples" / "test" / "obama_and_biden.jpg"
    page.set_input_files("#verify-b", str(pair))
    page.click("#verify-form button[type=submit]")
    page.wait_for_selector("#verify-faces-b .pick-face")
    verdicts = {}
    for i in range(page.locator("#verify-faces-b .pick-face").count()):
        page.click(f"#verify-faces-b .pick-face[data-face='{i}']")
        page.wait_for_selector(f"#verify-faces-b [aria-pressed=true][data-face='{i}']")
        verdicts[i] = page.get_attribute(".verdict", "data-same")
        if verdicts[i] == "true":
            shot(page, "22-verify-choose-a-face", full_page=True)
    assert sorted(verdicts.values()).count("true") == 1, verdicts
    assert axe_violations(page) == []
    assert rec.foreign(service.url) == [] and rec.csp == []


def test_audit_page_filtered_with_names_and_exported(
    browser: Any, service: Service, trail: dict[str, Any], context_pages: list[Any]
) -> None:
    page, rec = _signed_in(browser, service, context_pages, "admin", 1280, 1000)
    page.click("button[data-tab=audit]")
    page.wait_for_selector("#audit-table tbody tr[data-action]")
    page.wait_for_selector("#audit-action option[value=identify]", state="attached")
    page.select_option("#audit-action", "identify")
    page.click("#audit-filter button[type=submit]")
    page.wait_for_function(  # a function: the page's CSP forbids evaluating a string
        "() => [...document.querySelectorAll('#audit-table tbody tr')]"
        ".every(r => r.dataset.action === 'identify')"
    )
    sentences = page.eval_on_selector_all(
        "#audit-table td.sentence", "els => els.map(e => e.innerText)"
    )
    assert any("identified Barack Obama" in s for s in sentences)
    assert not any(trail["obama"] in s.split("record")[0] for s in sentences)  # names, not ids
    assert "chain verified" in page.inner_text("#audit-status")
    shot(page, "23-audit-filtered")
    with page.expect_download() as download:
        page.click("#audit-csv")
    rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text("utf-8"))))
    assert rows and {r["action"] for r in rows} == {"identify"}
    assert download.value.suggested_filename.endswith(".csv")
    assert axe_violations(page) == []
    assert rec.foreign(service.url) == [] and rec.csp == []


def test_keys_page_creates_a_key_shown_once_and_revokes_it(
    browser: Any, service: Service, context_pages: list[Any]
) -> None:
    page, rec = _signed_in(browser, service, context_pages, "admin", 1280, 1000)
    page.click("button[data-tab=keys]")
    page.wait_for_selector("#keys-table tbody tr")
    page.fill("#key-name", "reception desk")
    page.check("#scope-identify")
    page.check("#scope-confirm")
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#new-key:not([hidden])")
    secret = page.input_value("#new-key-value")
    kid = secret.split("_")[1]
    row = f"#keys-table tr[data-key='{kid}']"
    page.wait_for_selector(row)
    assert "reception desk" in page.inner_text(row) and "active" in page.inner_text(row)
    with httpx.Client(base_url=service.url) as c:
        me = c.get("/v1/keys/me", headers={"Authorization": f"Bearer {secret}"}).json()
        assert me["scopes"] == ["confirm", "identify"]
    assert page.is_disabled("#keys-table tr:has(.badge.ok) button.revoke")  # your own key
    shot(page, "24-key-created")
    page.click(f"{row} button.revoke")
    page.wait_for_selector("#confirm-dialog[open]")
    page.click("#confirm-ok")
    page.wait_for_selector(f"{row}.revoked")
    assert "revoked" in page.inner_text(f"{row} .status")
    with httpx.Client(base_url=service.url) as c:
        assert (
            c.get("/v1/keys/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 401
        )
    shot(page, "25-key-revoked")
    assert axe_violations(page) == []
    assert rec.foreign(service.url) == [] and rec.csp == []


def test_every_page_is_accessible_and_stays_on_its_origin(
    browser: Any, service: Service, trail: dict[str, Any], context_pages: list[Any]
) -> None:
    page, rec = _signed_in(browser, service, context_pages, "admin")
    problems: dict[str, list[str]] = {}
    for tab in PAGES:
        page.click(f"button[data-tab={tab}]")
        page.wait_for_selector(f"#tab-{tab}:not([hidden])")
        page.wait_for_load_state("networkidle")
        problems[tab] = axe_violations(page)
    page.goto(service.url + "/docs")
    page.wait_for_selector("details.op")
    assert page.locator("details.op").count() > 30
    page.click("#post-v1-verify summary")
    assert "image_a" in page.inner_text("#post-v1-verify")
    problems["docs"] = axe_violations(page)
    shot(page, "26-api-reference")
    assert {k: v for k, v in problems.items() if v} == {}
    assert rec.foreign(service.url) == [] and rec.csp == []
    assert [f for f in rec.failures if "/favicon" in f or "/static/" in f] == []


def test_a_phone_390px_wide_shows_every_page_without_sideways_scrolling(
    browser: Any, service: Service, trail: dict[str, Any], context_pages: list[Any]
) -> None:
    page, _ = open_page(browser, 390, 844)
    context_pages.append(page)
    page.goto(service.url + "/")
    shot(page, "27-phone-sign-in")
    sign_in(page, service.url, service.keys["admin"])
    wide = {}
    for tab in PAGES:
        page.click(f"button[data-tab={tab}]")
        page.wait_for_selector(f"#tab-{tab}:not([hidden])")
        page.wait_for_load_state("networkidle")
        wide[tab] = page.evaluate("document.documentElement.scrollWidth")
        if tab in ("people", "verify", "audit", "keys"):
            shot(page, f"28-phone-{tab}", full_page=True)
    assert {t: w for t, w in wide.items() if w > 390} == {}
    header = page.eval_on_selector("header", "h => h.scrollWidth <= h.clientWidth")
    assert header
    assert axe_violations(page) == []


def test_the_small_things_an_operator_notices(
    browser: Any, service: Service, trail: dict[str, Any], context_pages: list[Any]
) -> None:
    page, rec = _signed_in(browser, service, context_pages, "admin")
    # no empty badge beside "Alerts"
    assert page.eval_on_selector("#alerts-count", "b => b.offsetWidth") == 0
    # "New gallery" sits on the line of the gallery picker
    tops = page.eval_on_selector_all(
        "#gallery-select, #new-gallery", "els => els.map(e => e.getBoundingClientRect())"
    )
    assert abs((tops[0]["top"] + tops[0]["bottom"]) - (tops[1]["top"] + tops[1]["bottom"])) < 8
    # a refused source is explained at the form, and stays there
    page.click("button[data-tab=live]")
    page.wait_for_selector("#stream-allowed >> text=Allowed:")
    page.fill("#stream-source", "/etc/passwd")
    page.click("#stream-form button[type=submit]")
    page.wait_for_selector("#stream-error >> text=not an allowed stream source")
    assert "hamilton" not in page.inner_text("#stream-error")  # patterns, not a listing
    page.wait_for_timeout(300)
    assert page.is_visible("#stream-error") and not page.is_visible("#flash")
    shot(page, "29-live-refused-source")
    # a message shown on one page does not follow to another
    page.evaluate("flash('a message of the Live page', true)")
    page.click("button[data-tab=people]")
    assert not page.is_visible("#flash")
    # disabled buttons look disabled
    page.click("button[data-tab=archive]")
    colours = page.eval_on_selector_all(
        "#clusters-merge, #clusters-refresh", "els => els.map(e => getComputedStyle(e).color)"
    )
    assert page.is_disabled("#clusters-merge") and colours[0] != colours[1]
    # the privacy page says what a deadline means, in the right tense
    page.click("button[data-tab=privacy]")
    page.wait_for_selector(".privacy-gallery[data-gallery=door]")
    assert "(consent_ended)" not in page.inner_text("#privacy-report")
    assert rec.csp == []
