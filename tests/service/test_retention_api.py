"""Retention through the HTTP API: the policy per gallery (admin), a purge on demand, and the
purge the service runs by itself every ``purge_interval_s``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.service.conftest import running_service

from facelens.gallery import SqliteStore
from facelens.govern import KeyStore
from facelens.service.app import ServiceSettings


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:

    path = tmp_path_factory.mktemp("ret") / "store.db"
    with SqliteStore(path) as store:
        ks = KeyStore(store)
        keys = {
            "admin": ks.create("acme", ["admin"], "admin")[1],
            "enroll": ks.create("acme", ["enroll", "identify", "audit:read"], "enroll")[1],
            "other": ks.create("globex", ["admin"], "other")[1],
        }
    settings = ServiceSettings(gallery_path=path, purge_interval_s=0.3)
    with running_service(settings) as url:
        yield url, keys


def client(svc: tuple[str, dict[str, str]], who: str) -> httpx.Client:
    url, keys = svc
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {keys[who]}"}, timeout=60)


def enrol(c: httpx.Client, data: Path, gallery: str, name: str) -> str:
    knn = data / "faces" / "face_recognition" / "knn_examples"
    c.post("/v1/galleries", json={"name": gallery})
    r = c.post(
        f"/v1/galleries/{gallery}/identities",
        data={"name": name, "consent_purpose": "door", "consent_granted_by": name},
        files=[
            ("images", (p.name, p.read_bytes(), "image/jpeg"))
            for p in sorted((knn / "train" / "obama").iterdir())
        ],
    )
    assert r.status_code == 201, r.text
    return str(r.json()["identity"]["id"])


def test_policy_needs_admin_and_shows_deadlines(
    svc: tuple[str, dict[str, str]], data: Path
) -> None:
    with client(svc, "enroll") as c:
        enrol(c, data, "desk", "Barack Obama")
        assert c.put("/v1/galleries/desk/retention", json={"max_idle_days": 30}).status_code == 403
    with client(svc, "admin") as c:
        r = c.put("/v1/galleries/desk/retention", json={"max_idle_days": 0})
        assert r.status_code == 422
        r = c.put("/v1/galleries/desk/retention", json={"max_idle_days": 30})
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["policy"] == {"max_idle_days": 30, "consent_grace_days": 0}
        assert [d["name"] for d in doc["next_deadlines"]] == ["Barack Obama"]
        assert doc["next_deadlines"][0]["reason"] == "idle"
    with client(svc, "other") as c:  # another tenant's gallery does not exist for it
        assert c.get("/v1/galleries/desk/retention").status_code == 404


def test_the_service_purges_a_withdrawn_consent_by_itself(
    svc: tuple[str, dict[str, str]], data: Path
) -> None:
    with client(svc, "enroll") as c:
        oid = enrol(c, data, "gate", "Barack Obama")
        templates = len(c.get(f"/v1/galleries/gate/identities/{oid}/samples").json())
        assert templates >= 2  # two photos; a fusion default keeps its parts' templates too
        r = c.post(f"/v1/galleries/gate/identities/{oid}/consents/withdraw")
        assert r.status_code == 200, r.text
        assert all(c["expires_at"] for c in r.json()["consents"])  # every consent has an end
        deadline = time.time() + 15
        while time.time() < deadline:
            if c.get(f"/v1/galleries/gate/identities/{oid}").status_code == 404:
                break
            time.sleep(0.2)
        assert c.get(f"/v1/galleries/gate/identities/{oid}").status_code == 404
        trail = c.get("/v1/audit").json()
        purge = [a for a in trail if a["action"] == "purge" and oid in a["candidates"]]
        assert len(purge) == 1 and purge[0]["key_id"] == "service:retention"
        assert purge[0]["decision"]["reason"] == "consent_ended"
        assert purge[0]["decision"]["receipt"]["samples_deleted"] == templates
        withdrawn = [a for a in trail if a["action"] == "consent_withdrawn"]
        assert withdrawn[-1]["candidates"] == [oid]
        assert c.get("/v1/audit/verify").json()["ok"] is True


def test_purge_on_demand_is_the_tenants_own(svc: tuple[str, dict[str, str]]) -> None:
    with client(svc, "admin") as c:
        r = c.post("/v1/govern/purge", params={"dry_run": "true"})
        assert r.status_code == 200 and r.json()["dry_run"] is True
    with client(svc, "enroll") as c:
        assert c.post("/v1/govern/purge").status_code == 403
