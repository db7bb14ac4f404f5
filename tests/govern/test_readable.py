"""The audit trail as people read it: one spelling per key, names only from the reader's
tenant, erased people by their receipt's name, every action a sentence, refusals marked."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facelens.gallery import Consent, NewSample, SqliteStore
from facelens.gallery.gallery import RawGallery
from facelens.govern import AuditLog, GovernedGallery, KeyStore
from facelens.govern.readable import ACTIONS, actor, actor_label, describe, identity_names
from facelens.govern.readable import is_refusal as refused

CONSENT = Consent(purpose="door", granted_by="self", granted_at="2026-01-01T00:00:00+00:00")


def _sample(i: int) -> NewSample:
    v = np.zeros(8, np.float32)
    v[i] = 1
    return NewSample(v, "m", {}, f"{i:064x}")


def test_a_trail_reads_as_sentences_with_names_from_the_readers_tenant(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "g.db") as store:
        audit = AuditLog(store)
        door = RawGallery(store, "acme/door")
        acme = GovernedGallery(
            door,
            audit,
            tenant="acme",
            actor="0123456789abcdef",
            public_name="door",
        )
        ada = door.enroll("Ada", [_sample(0)], CONSENT).identity  # stored, not audited
        bob = door.enroll("Bob", [_sample(1)], CONSENT).identity
        store.ensure_gallery("globex/door")
        eve = RawGallery(store, "globex/door").enroll("Eve", [_sample(2)], CONSENT).identity
        acme.rename(ada.id, "Ada Lovelace")
        acme.delete(bob.id)
        keys = KeyStore(store, audit)
        made, _ = keys.create("acme", ["identify"], "desk", by="cli:ops")
        keys.revoke(made.id, by="key:0123456789abcdef")  # the older spelling
        trail = audit.search("acme")

        # names of the reader's tenant only, and only of people enrolled now
        names = identity_names(store, "acme", [ada.id, bob.id, eve.id])
        assert names == {ada.id: "Ada Lovelace"}
        said = [describe(r, names) for r in trail]
    assert said == [
        "key 0123456789abcdef renamed a person of door to Ada Lovelace.",
        "key 0123456789abcdef erased Bob (since erased) from door: 1 template and 1 consent "
        "record deleted.",
        "ops (command line) created key " + made.id + " (desk) with scopes identify.",
        "key 0123456789abcdef revoked key " + made.id + " (desk) with scopes identify.",
    ]
    assert [actor(r.key_id) for r in trail][-1] == "0123456789abcdef"
    assert not any(refused(r) for r in trail)


def test_every_known_action_and_a_refusal_read_as_sentences(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "g.db") as store:
        audit = AuditLog(store)
        for action in ACTIONS:
            audit.append(tenant="t", key_id="service:retention", action=action, gallery="g")
        audit.append(
            tenant="t",
            key_id="0123456789abcdef",
            action="enroll_refused",
            gallery="g",
            decision={"reason": "no consent"},
        )
        trail = audit.search("t")
    said = {r.action: describe(r, {}) for r in trail}
    assert set(said) == {*ACTIONS, "enroll_refused"}
    for action, sentence in said.items():  # a sentence, whatever the decision held
        assert sentence.endswith(".") and "{" not in sentence and "None" not in sentence, action
    assert (
        said["enroll_refused"]
        == "key 0123456789abcdef was refused enroll refused in g: no consent."
    )
    assert refused(trail[-1]) and not refused(trail[0])
    assert actor_label("cli:ada") == "ada (command line)"
