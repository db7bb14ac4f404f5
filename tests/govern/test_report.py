"""The privacy report: what each gallery holds, consent status, retention deadlines, pending
purges and searches per key, from the library (on an injected clock) and the command line."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from facelens import Embeddings
from facelens.cli.main import main
from facelens.gallery import Consent, NewSample, SqliteStore
from facelens.gallery.gallery import RawGallery
from facelens.govern import AuditLog, GovernedGallery
from facelens.govern.report import privacy_report

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=128).astype(np.float32)
    return v / np.linalg.norm(v)


def test_the_report_counts_what_an_assessment_needs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    now = [T0]
    store = SqliteStore(tmp_path / "g.db", clock=lambda: now[0])
    audit = AuditLog(store)
    g = RawGallery(store)
    for i, days in enumerate((None, 20, 5)):  # no end; ends in 20 days; ends in 5 days
        end = None if days is None else (T0 + timedelta(days=days)).isoformat()
        c = Consent(purpose="door", granted_by="self", granted_at=T0.isoformat(), expires_at=end)
        g.enroll(f"p{i}", [NewSample(unit(i), "m", {}, hashlib.sha256(bytes([i])).hexdigest())], c)
    now[0] = T0 + timedelta(days=10)  # p2's consent has ended, p1's ends within 30 days
    for actor, n in (("key:k1", 2), ("key:k2", 1)):
        governed = GovernedGallery(g, audit, tenant="default", actor=actor)
        for _ in range(n):
            governed.identify_many(Embeddings(unit(0)[None], "m"), 0.9, 3, probe_sha256="x")
    (doc,) = privacy_report(store)["galleries"]
    assert doc["people"] == 3 and doc["templates"] == {"m": 3}
    assert doc["consent"] == {"valid": 2, "ending_soon": 1, "ended": 1, "no_end": 1}
    assert [d["name"] for d in doc["pending_purges"]] == ["p2"]
    assert doc["pending_purges"][0]["reason"] == "consent_ended"
    assert doc["retention"] == {"max_idle_days": 1095, "consent_grace_days": 0}
    assert doc["next_deadlines"][0]["name"] == "p1"  # consent ends on day 20
    assert {(s["key"], s["count"]) for s in doc["searches"]} == {("key:k1", 2), ("key:k2", 1)}
    assert doc["templates_transformed"] and not doc["templates_sealed"]
    store.close()

    assert main(["govern", "report", "--gallery", str(tmp_path / "g.db"), "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert [x["gallery"] for x in cli["galleries"]] == ["default"]
    assert main(["govern", "report", "--gallery", str(tmp_path / "g.db")]) == 0
    text = capsys.readouterr().out
    assert "NOT sealed" in text and "3 people" in text
    assert "templates 3 of m," in text and "{" not in text  # words, not a Python dict
    assert "(unmatched since 2026-01-11)" in text  # the deadline said in words
