"""Two-person confirmation, in the library: an alert with one confirmation releases nothing,
with two different keys it releases its event exactly once, a rejection releases nothing, an
undecided one expires; the shot is erased once decided; every step is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from facelens.errors import ConflictError
from facelens.gallery import SqliteStore
from facelens.gallery.protect import TemplateKey
from facelens.govern import AuditLog
from facelens.govern.confirm import Alerts

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EVENT = {
    "type": "identified",
    "time": T0.isoformat(),
    "frame": 7,
    "track_id": 3,
    "identity": "Ann",
    "identity_id": "i1",
    "score": 0.97,
    "source": "door",
}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Alerts, list[datetime], SqliteStore]:
    now = [T0]
    store = SqliteStore(tmp_path / "g.db", clock=lambda: now[0], key=TemplateKey(bytes(32)))
    return Alerts(store, AuditLog(store), ttl_s=600), now, store


def test_two_different_keys_release_the_event_once(setup) -> None:  # type: ignore[no-untyped-def]
    alerts, _, store = setup
    a = alerts.hold("acme/door", EVENT, b"\x89PNG shot", "key:stream")
    assert a.status == "pending" and a.has_shot and a.gallery == "door"
    assert alerts.shot("acme", a.id) == b"\x89PNG shot"
    raw = store.fetch("SELECT shot FROM alerts WHERE id = ?", (a.id,))[0][0]
    assert b"PNG" not in bytes(raw)  # sealed like the templates
    after_one, released = alerts.vote("acme", a.id, "k1", "confirm")
    assert released is None and after_one.status == "pending"
    with pytest.raises(ConflictError, match="second person"):
        alerts.vote("acme", a.id, "k1", "confirm")  # the same key twice is one person
    done, released = alerts.vote("acme", a.id, "k2", "confirm")
    assert released == EVENT and done.status == "confirmed"
    assert [v[0] for v in done.votes] == ["k1", "k2"]
    with pytest.raises(ConflictError, match="confirmed"):
        alerts.vote("acme", a.id, "k3", "confirm")
    assert alerts.shot("acme", a.id) is None and alerts.pending("acme") == []
    actions = [r.action for r in AuditLog(store).records("acme")]
    assert actions == ["alert_raised", "alert_confirm", "alert_confirm"]


def test_a_rejection_releases_nothing(setup) -> None:  # type: ignore[no-untyped-def]
    alerts, _, _ = setup
    a = alerts.hold("acme/door", EVENT, None, "key:stream")
    alerts.vote("acme", a.id, "k1", "confirm")
    rejected, released = alerts.vote("acme", a.id, "k2", "reject")
    assert released is None and rejected.status == "rejected"
    with pytest.raises(ConflictError):
        alerts.vote("acme", a.id, "k3", "confirm")


def test_an_undecided_alert_expires_and_another_tenant_cannot_see_it(setup) -> None:  # type: ignore[no-untyped-def]
    from facelens.errors import NotFoundError

    alerts, now, store = setup
    a = alerts.hold("acme/door", EVENT, b"shot", "key:stream")
    with pytest.raises(NotFoundError):
        alerts.vote("globex", a.id, "k9", "confirm")
    alerts.vote("acme", a.id, "k1", "confirm")
    now[0] = T0 + timedelta(seconds=601)
    assert alerts.pending("acme") == []
    assert alerts.get("acme", a.id).status == "expired" and alerts.shot("acme", a.id) is None
    with pytest.raises(ConflictError, match="expired"):
        alerts.vote("acme", a.id, "k2", "confirm")
    assert [r.action for r in AuditLog(store).records("acme")][-1] == "alert_expired"
