"""Two-person confirmation through the service: a stream over a real clip against a gallery set
to ``confirm=2`` raises alerts and sends no identification to the operator's webhook; one
confirmation sends nothing, two different keys send exactly one ``identified`` event, a
rejection sends none; and the web UI shows the best shot beside the enrolled reference and
takes both confirmations (Playwright, Debian's chromium)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.conftest import data_root
from tests.service.conftest import running_service

from facelens.events.sinks import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from facelens.gallery import SqliteStore
from facelens.govern import KeyStore
from facelens.service.app import ServiceSettings

SECRET = b"hook secret"
ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"


class Receiver(ThreadingHTTPServer):
    """The operator's webhook endpoint: keeps every correctly signed event."""

    events: list[dict[str, Any]]


class Hook(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        ts = self.headers[TIMESTAMP_HEADER]
        if self.headers[SIGNATURE_HEADER] == sign(SECRET, ts, body):
            self.server.events.append(json.loads(body))  # type: ignore[attr-defined]
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


@dataclass
class Svc:
    url: str
    keys: dict[str, str]
    hook: Receiver

    def client(self, who: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[who]}"}, timeout=120
        )

    def identified(self) -> list[dict[str, Any]]:
        return [e for e in self.hook.events if e["type"] == "identified"]


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory, data: Path) -> Iterator[Svc]:
    """(``data``: without the evaluation data these tests skip, visibly.)"""
    hook = Receiver(("127.0.0.1", 0), Hook)
    hook.events = []
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    path = tmp_path_factory.mktemp("alerts") / "store.db"
    with SqliteStore(path) as store:
        ks = KeyStore(store)
        keys = {
            "admin": ks.create("acme", ["admin"], "admin")[1],
            "ann": ks.create("acme", ["confirm"], "ann")[1],
            "bob": ks.create("acme", ["confirm"], "bob")[1],
            "reader": ks.create("acme", ["identify"], "reader")[1],
        }
    settings = ServiceSettings(
        gallery_path=path,
        allow_sources=(str(data_root().resolve() / "video") + "/*",),
        event_sinks=(f"webhook:http://127.0.0.1:{hook.server_address[1]}/hook",),
        webhook_secret=SECRET,
    )
    with running_service(settings) as url:
        s = Svc(url, keys, hook)
        enrol_stage(s)
        yield s
    hook.shutdown()
    hook.server_close()


def enrol_stage(s: Svc) -> None:
    """A gallery that wants two people to confirm, keeping chips, with two people of the
    Hamilton clip."""
    data = data_root()
    with s.client("admin") as c:
        r = c.post("/v1/galleries", json={"name": "stage", "confirm": 2, "keep_chips": True})
        assert r.status_code == 201 and r.json()["settings"]["confirm"] == 2, r.text
        for name, f in (("Lin-Manuel Miranda", "lin-manuel-miranda.png"),
                        ("Alex Lacamoire", "alex-lacamoire.png")):  # fmt: skip
            r = c.post(
                "/v1/galleries/stage/identities",
                data={"name": name, "consent_purpose": "show", "consent_granted_by": name},
                files={"images": (f, (data / "video" / f).read_bytes(), "image/png")},
            )
            assert r.status_code == 201, r.text


def watch_clip(s: Svc) -> list[dict[str, Any]]:
    """Run the clip through a stream to its end; the alerts it left."""
    clip = data_root() / "video" / "hamilton_clip.mp4"
    with s.client("admin") as c:
        before = {a["id"] for a in c.get("/v1/alerts").json()}
        r = c.post("/v1/streams", json={"source": str(clip), "gallery": "stage"})
        assert r.status_code == 201, r.text
        jid = r.json()["id"]
        deadline = time.time() + 240
        while time.time() < deadline:
            if c.get(f"/v1/streams/{jid}").json()["status"] in ("finished", "failed", "stopped"):
                break
            time.sleep(0.5)
        assert c.get(f"/v1/streams/{jid}").json()["status"] == "finished"
        return [a for a in c.get("/v1/alerts").json() if a["id"] not in before]


def wait_for(cond: Any, seconds: float = 10) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return bool(cond())


def test_one_confirmation_sends_nothing_two_send_one_a_rejection_none(svc: Svc) -> None:
    alerts = watch_clip(svc)
    assert len(alerts) >= 2, alerts
    time.sleep(1.0)  # anything the stream sent has reached the webhook by now
    assert svc.hook.events, "the stream's other events reach the webhook"
    assert svc.identified() == []  # no identification left before anyone confirmed
    assert all(e.get("identity") is None for e in svc.hook.events)  # nothing names anyone
    first, second = alerts[0], alerts[1]
    assert first["status"] == "pending" and first["required"] == 2 and first["has_shot"]
    with svc.client("ann") as c:  # an absurd id is refused without being echoed back
        r = c.post(f"/v1/alerts/{'x' * 5000}/confirm")
        assert r.status_code == 422 and "x" * 100 not in r.text
    with svc.client("reader") as c:  # without the confirm scope
        assert c.post(f"/v1/alerts/{first['id']}/confirm").status_code == 403
        assert c.get("/v1/alerts").status_code == 403
    with svc.client("ann") as c:
        r = c.post(f"/v1/alerts/{first['id']}/confirm")
        assert r.status_code == 200 and r.json()["status"] == "pending"
        assert c.post(f"/v1/alerts/{first['id']}/confirm").status_code == 409  # same person
    time.sleep(1.0)
    assert svc.identified() == []  # one confirmation: nothing sent
    with svc.client("bob") as c:
        r = c.post(f"/v1/alerts/{first['id']}/confirm")
        assert r.status_code == 200 and r.json()["status"] == "confirmed"
        assert c.get(f"/v1/alerts/{first['id']}/shot").status_code == 404  # erased once decided
    assert wait_for(lambda: len(svc.identified()) == 1)
    sent = svc.identified()[0]
    assert sent["identity_id"] == first["identity_id"] and sent["alert"] == first["id"]
    assert sent["identity"] == first["identity"] and sent["tenant"] == "acme"
    with svc.client("admin") as c:
        assert c.post(f"/v1/alerts/{first['id']}/confirm").status_code == 409  # decided
        r = c.post(f"/v1/alerts/{second['id']}/reject")
        assert r.status_code == 200 and r.json()["status"] == "rejected"
        trail = c.get("/v1/audit", params={"limit": 1000}).json()
    with svc.client("ann") as c:
        assert c.post(f"/v1/alerts/{second['id']}/confirm").status_code == 409
    time.sleep(1.0)
    assert len(svc.identified()) == 1  # the rejected one never went out
    votes = [a for a in trail if a["action"] in ("alert_confirm", "alert_reject")]
    assert [a["decision"]["status"] for a in votes][-3:] == ["pending", "confirmed", "rejected"]


def test_the_ui_shows_shot_and_reference_and_takes_two_confirmations(svc: Svc, browser) -> None:  # type: ignore[no-untyped-def]
    alerts = watch_clip(svc)
    assert alerts
    target = alerts[0]
    sent_before = len(svc.identified())
    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = []
    for who in ("ann", "bob"):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(svc.url + "/")
        page.fill("#api-key", svc.keys[who])
        page.click("#sign-in-form button")
        page.wait_for_selector("#app:not([hidden])")
        page.click("button[data-tab=alerts]")
        card = page.wait_for_selector(f".alert-card[data-alert='{target['id']}']")
        assert card is not None
        # the best shot and the enrolled reference, side by side, both real images
        for img in ("img.shot", "img.reference"):
            page.wait_for_function(
                f"() => document.querySelector(\".alert-card[data-alert='{target['id']}'] {img}\")"
                "?.naturalWidth > 0"
            )
        pages.append(page)
    pages[0].screenshot(path=str(SHOTS / "08-alert-to-confirm.png"), full_page=True)
    pages[0].click(f".alert-card[data-alert='{target['id']}'] button.confirm")
    pages[0].wait_for_selector("#flash >> text=second person must confirm")
    time.sleep(1.0)
    assert len(svc.identified()) == sent_before  # one person: nothing sent
    pages[1].click(f".alert-card[data-alert='{target['id']}'] button.confirm")
    pages[1].wait_for_selector("#flash >> text=Confirmed by two people")
    assert wait_for(lambda: len(svc.identified()) == sent_before + 1)
    assert svc.identified()[-1]["alert"] == target["id"]
    pages[1].wait_for_selector(f".alert-card[data-alert='{target['id']}']", state="detached")
    for page in pages:
        page.close()
