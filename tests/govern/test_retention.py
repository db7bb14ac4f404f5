"""Retention: the 3-year rule from the last enrolment or match, and consent expiry or
withdrawal after a grace period, enforced by a purge that leaves a receipt in the audit chain.
Time is the store's clock, moved by the test."""

from __future__ import annotations

import hashlib
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facelens import Pipeline
from facelens.cli.main import main
from facelens.errors import InputError
from facelens.gallery import Consent, SqliteStore
from facelens.gallery.gallery import RawGallery
from facelens.govern import AuditLog, GovernedGallery, Retention, RetentionPolicy

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, days: float) -> None:
        self.now = T0 + timedelta(days=days)


def consent(expires_days: float | None = None) -> Consent:
    exp = None if expires_days is None else (T0 + timedelta(days=expires_days)).isoformat()
    return Consent(purpose="door", granted_by="self", granted_at=T0.isoformat(), expires_at=exp)


def test_purge_on_the_three_year_rule_and_on_consent_end(
    tmp_path: Path, data: Path, pipeline: Pipeline
) -> None:
    clock = Clock()
    store = SqliteStore(tmp_path / "g.db", clock=clock)
    audit = AuditLog(store)
    g = GovernedGallery(RawGallery(store), audit, tenant="default", actor="cli:test")
    knn = data / "faces" / "face_recognition" / "knn_examples"
    obama = sorted((knn / "train" / "obama").iterdir())
    biden = sorted((knn / "train" / "biden").iterdir())
    g.enroll(pipeline, "Obama", obama, consent())
    g.enroll(pipeline, "Biden", biden, consent(expires_days=30))
    g.enroll(pipeline, "Obama too", obama[:1], consent())
    retention = Retention(store, audit)
    assert retention.policy("default") == RetentionPolicy(1095, 0)

    clock.at(10)  # Obama is matched: his three years start again
    probe = knn / "test" / "obama1.jpg"
    from facelens.decode.image import decode_image

    emb = pipeline.embed(decode_image(probe.read_bytes())[0])
    found = g.identify_many(emb, 0.5, 3, probe_sha256="x")
    assert found[0].identity is not None and found[0].identity.name in ("Obama", "Obama too")
    matched = found[0].identity.name

    clock.at(29)
    assert retention.due() == []
    clock.at(30)  # Biden's consent ended now; the grace is 0 days
    assert [(d.name, d.reason) for d in retention.purge("cli:test", dry_run=True).due] == [
        ("Biden", "consent_ended")
    ]
    assert {i.name for i in g.identities()} == {"Obama", "Biden", "Obama too"}
    # every template of his is erased (a fusion default keeps its parts' templates too)
    templates = sum(next(i for i in g.identities() if i.name == "Biden").models.values())
    assert templates >= len(biden)
    done = retention.purge("cli:test")
    assert [r["name"] for r in done.receipts] == ["Biden"]
    assert {i.name for i in g.identities()} == {"Obama", "Obama too"}
    record = [r for r in audit.records() if r.action == "purge"][-1]
    assert record.decision["reason"] == "consent_ended"
    assert record.decision["receipt"]["samples_deleted"] == templates
    assert record.seq == done.receipts[0]["audit_seq"]

    # three years after the last interaction: the unmatched one at 3y, the matched one 10 days on
    other = "Obama too" if matched == "Obama" else "Obama"
    clock.at(1094.9)
    assert retention.due() == []
    clock.at(1095)
    assert [(d.name, d.reason) for d in retention.due()] == [(other, "idle")]
    retention.purge("cli:test")
    clock.at(1104.9)
    assert retention.due() == []
    clock.at(1105)
    assert [d.name for d in retention.purge("cli:test").due] == [matched]
    assert g.identities() == []
    assert [r.decision["reason"] for r in audit.records() if r.action == "purge"] == [
        "consent_ended",
        "idle",
        "idle",
    ]
    assert audit.verify().ok
    store.close()


def test_withdrawal_then_grace_then_purge(tmp_path: Path) -> None:
    """A withdrawn consent stops search at once; the purge follows after the grace period."""
    from facelens.gallery import NewSample

    clock = Clock()
    store = SqliteStore(tmp_path / "g.db", clock=clock)
    audit = AuditLog(store)
    g = GovernedGallery(RawGallery(store), audit, tenant="default", actor="cli:test")
    v = [1.0] + [0.0] * 127
    import numpy as np

    g.enroll_samples(
        "Ann",
        [NewSample(np.array(v, np.float32), "m", {}, hashlib.sha256(b"a").hexdigest())],
        consent(),
    )
    retention = Retention(store, audit)
    with pytest.raises(InputError, match="consent_grace_days"):
        RetentionPolicy(1095, -1)
    retention.set_policy("default", RetentionPolicy(1095, 7), "cli:test")
    clock.at(40)
    g.withdraw_consent("Ann", by="name")
    assert g.search_size("m") == (0, 0)  # no longer searchable, still stored
    clock.at(46.9)
    assert retention.due() == []
    clock.at(47)
    assert [(d.name, d.reason) for d in retention.purge("cli:test").due] == [
        ("Ann", "consent_ended")
    ]
    actions = [r.action for r in audit.records()]
    assert actions == ["enroll", "retention_policy", "consent_withdrawn", "purge"]
    assert audit.verify().ok
    store.close()


def test_the_cli_purges_and_sets_policy(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, data: Path
) -> None:
    """``facelens govern retention`` and ``govern purge [--dry-run]`` on the real clock: a
    withdrawn consent with the default grace of 0 days is due at once."""
    g = tmp_path / "g.db"
    knn = data / "faces" / "face_recognition" / "knn_examples"
    obama = sorted((knn / "train" / "obama").iterdir())
    assert (
        main(["enroll", "Obama", *map(str, obama), "--consent", "door", "--gallery", str(g)]) == 0
    )
    assert (
        main(["govern", "retention", "--gallery", str(g), "--max-idle-days", "30", "--json"]) == 0
    )
    capsys.readouterr()
    assert main(["govern", "retention", "--gallery", str(g), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["policy"] == {"max_idle_days": 30, "consent_grace_days": 0}
    (deadline,) = doc["next_deadlines"]
    assert deadline["name"] == "Obama" and deadline["reason"] == "idle"
    assert main(["govern", "purge", "--gallery", str(g), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["erased"] == 0
    assert main(["gallery", "show", "Obama", "--gallery", str(g), "--json"]) == 0
    templates = len(json.loads(capsys.readouterr().out)["samples"])
    assert templates >= len(obama)
    assert main(["gallery", "withdraw", "Obama", "--gallery", str(g), "--json"]) == 0
    capsys.readouterr()
    time.sleep(1.1)  # a consent withdrawn the second it was given ends a second later
    assert main(["govern", "purge", "--dry-run", "--gallery", str(g), "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in dry["due"]] == ["Obama"] and dry["erased"] == 0
    assert main(["govern", "purge", "--gallery", str(g), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["erased"] == 1 and done["receipts"][0]["samples_deleted"] == templates
    assert main(["gallery", "list", "--gallery", str(g), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["audit", "list", "--gallery", str(g), "--json"]) == 0
    actions = [r["action"] for r in json.loads(capsys.readouterr().out)]
    assert actions == ["enroll", "retention_policy", "consent_withdrawn", "purge"]
    assert main(["govern", "retention", "--gallery", str(g), "--max-idle-days", "0"]) == 2
