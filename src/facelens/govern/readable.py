"""The audit trail as people read it: who acted (one format for keys, whichever way a record
spelt it), the people concerned by name, and each decision as a sentence.

Records are hash-chained and never rewritten: older ones name a key ``key:<id>`` where the
rest say ``<id>``, so the reading is normalised here, not the trail. Names come from the
gallery as it is now, for the reader's own tenant only; an erased person keeps the name
their erasure receipt recorded, else is "an erased person".

Example:
    >>> actor("key:c5e4a1b2c3d4e5f6"), actor("c5e4a1b2c3d4e5f6"), actor("cli:ada")
    ('c5e4a1b2c3d4e5f6', 'c5e4a1b2c3d4e5f6', 'cli:ada')
    >>> actor_label("service:retention")
    'the service (retention)'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from facelens.gallery.contract import GalleryStore
from facelens.govern.audit import AuditRecord
from facelens.govern.names import split_gallery_key

__all__ = ["ACTIONS", "actor", "actor_label", "describe", "identity_names", "is_refusal"]

# The actions the trail holds, as a filter lists them.
ACTIONS = {
    "identify": "identify (search)",
    "verify": "verify (1:1)",
    "enroll": "enrol",
    "enroll_override": "enrol despite the face check (override)",
    "rename": "rename",
    "delete": "erase",
    "consent_added": "consent recorded",
    "consent_withdrawn": "consent withdrawn",
    "purge": "retention erasure",
    "purge_archive": "retention erasure (photo archive)",
    "retention_policy": "retention policy",
    "stream_start": "stream started",
    "stream_stop": "stream stopped",
    "redact_start": "redaction started",
    "redact_stop": "redaction stopped",
    "alert_raised": "alert raised",
    "alert_confirm": "alert confirmed",
    "alert_reject": "alert rejected",
    "alert_expired": "alert expired",
    "stop": "identification stopped",
    "resume": "identification resumed",
    "key_created": "key created",
    "key_revoked": "key revoked",
    "rotate_key": "template key rotated",
}

_KEY_ID = re.compile(r"^[0-9a-f]{16}$")


def actor(key_id: str) -> str:
    """One spelling per actor: a key by its bare id (``key:<id>`` and ``<id>`` alike),
    anything else (``cli:<user>``, ``service:<task>``) as recorded."""
    if key_id.startswith("key:"):
        return key_id[4:]
    return key_id


def actor_label(key_id: str) -> str:
    """Who acted, as a sentence names them."""
    a = actor(key_id)
    kind, sep, who = a.partition(":")
    if not sep:
        return f"key {a}" if _KEY_ID.match(a) else a
    if kind == "cli":
        return f"{who} (command line)"
    if kind == "service":
        return f"the service ({who})"
    if kind == "python":
        return f"{who} (Python)"
    return a


def is_refusal(rec: AuditRecord) -> bool:
    """A refused action (no consent, identification stopped, a source not allowed...)."""
    d = rec.decision
    return "refus" in rec.action or bool(d.get("refused")) or d.get("outcome") == "refused"


def identity_names(store: GalleryStore, tenant: str, ids: Iterable[str]) -> dict[str, str]:
    """The names of those of ``ids`` enrolled now in ``tenant``'s galleries."""
    found = store.names_of(sorted({i for i in ids if i}))
    return {i: name for i, (name, g) in found.items() if split_gallery_key(g)[0] == tenant}


def _people(ids: Iterable[str], names: Mapping[str, str], erased: Mapping[str, str]) -> str:
    said = []
    for i in ids:
        if i in names:
            said.append(names[i])
        elif i in erased:
            said.append(f"{erased[i]} (since erased)")
        else:
            said.append(f"a person no longer enrolled ({i[:8]})")
    if not said:
        return "nobody"
    return ", ".join(said[:-1]) + (" and " if len(said) > 1 else "") + said[-1]


def _plural(n: int, what: str) -> str:
    return f"{n} {what}" + ("" if n == 1 else "s")


def _erased_names(rec: AuditRecord) -> dict[str, str]:
    receipt = rec.decision.get("receipt")
    if isinstance(receipt, dict) and receipt.get("identity_id") and receipt.get("name"):
        return {str(receipt["identity_id"]): str(receipt["name"])}
    return {}


def describe(rec: AuditRecord, names: Mapping[str, str]) -> str:
    """The record as one sentence (``names``: identity id -> name, as the reader may see).

    Example:
        >>> from facelens.govern.audit import AuditRecord
        >>> rec = AuditRecord(7, "2026-01-02T10:00:00.000+00:00", "acme", "key:0123456789abcdef",
        ...     "identify", "door", "ab" * 32, ("i1", "i2"), 0.52, "dlib",
        ...     {"faces": 2, "identified": ["i1"], "candidates_shown": False}, "0" * 64, "1" * 64)
        >>> describe(rec, {"i1": "Ada Lovelace"})
        'key 0123456789abcdef searched door with a photo of 2 faces: identified Ada Lovelace.'
    """
    who = actor_label(rec.key_id)
    d: dict[str, Any] = rec.decision
    people = _people(rec.candidates, names, _erased_names(rec))
    where = rec.gallery or "the service"
    say = _SENTENCES.get(rec.action)
    if say is not None:
        return say(who, where, people, d, names)
    if is_refusal(rec):
        why = d.get("why") or d.get("reason") or d.get("detail") or d.get("error") or ""
        return f"{who} was refused {rec.action.replace('_', ' ')} in {where}" + (
            f": {why}." if why else "."
        )
    extra = ", ".join(f"{k} {v}" for k, v in d.items() if k != "generation")
    return f"{who}: {rec.action.replace('_', ' ')} in {where}" + (f" ({extra})." if extra else ".")


_Say = Callable[[str, str, str, dict[str, Any], Mapping[str, str]], str]


def _identify(who: str, where: str, _: str, d: dict[str, Any], names: Mapping[str, str]) -> str:
    named = d.get("identified") or []
    faces = int(d.get("faces", 0))
    found = (
        f"identified {_people(named, names, {})}"
        if named
        else ("no face found" if faces == 0 else "nobody identified")
    )
    shown = " (candidate lists shown)" if d.get("candidates_shown") else ""
    return f"{who} searched {where} with a photo of {_plural(faces, 'face')}: {found}{shown}."


def _verify(who: str, _w: str, _p: str, d: dict[str, Any], _n: Mapping[str, str]) -> str:
    same = "the same person" if d.get("same") else "not the same person"
    sim = f" (similarity {d['similarity']})" if d.get("similarity") is not None else ""
    return f"{who} compared two photos: {same}{sim}."


def _enroll(who: str, where: str, people: str, d: dict[str, Any], _: Mapping[str, str]) -> str:
    how = "enrolled" if d.get("created") else "added photos of"
    src = " from grouped faces of the photo archive" if d.get("from") == "archive" else ""
    rejected = int(d.get("rejected", 0))
    left = f", {_plural(rejected, 'photo')} not used" if rejected else ""
    added = _plural(int(d.get("added", 0)), "sample")
    return f"{who} {how} {people} in {where}{src}: {added} added{left}."


def _delete(who: str, where: str, people: str, d: dict[str, Any], _: Mapping[str, str]) -> str:
    r = d.get("receipt") or {}
    templates = _plural(int(r.get("samples_deleted", 0)), "template")
    consents = _plural(int(r.get("consents_deleted", 0)), "consent record")
    return f"{who} erased {people} from {where}: {templates} and {consents} deleted."


def _purge(who: str, where: str, people: str, d: dict[str, Any], _: Mapping[str, str]) -> str:
    reason = {"idle": "not matched for too long", "consent_ended": "consent ended"}.get(
        str(d.get("reason")), str(d.get("reason") or "")
    )
    why = f" ({reason})" if reason else ""
    return f"{who} erased {people} from {where} under its retention policy{why}."


def _stream(verb: str) -> _Say:
    def say(who: str, where: str, _p: str, d: dict[str, Any], _n: Mapping[str, str]) -> str:
        src = d.get("source", "a source")
        if verb.endswith("start"):
            act = "started redacting" if verb.startswith("redact") else "started watching"
            return f"{who} {act} {src} against {where}."
        act = "stopped redacting" if verb.startswith("redact") else "stopped watching"
        events = ", ".join(f"{n} {k}" for k, n in (d.get("events") or {}).items()) or "no event"
        ended = f"; ended: {d['ended']}" if d.get("ended") else ""
        frames = _plural(int(d.get("frames", 0)), "frame")
        return f"{who} {act} {src} against {where}: {frames}, {events}{ended}."

    return say


def _alert(what: str) -> _Say:
    def say(who: str, where: str, people: str, d: dict[str, Any], _: Mapping[str, str]) -> str:
        alert = f"alert {d['alert']}" if d.get("alert") else "an alert"
        if what == "raised":
            return (
                f"{who} held {alert} naming {people} in {where} until "
                f"{d.get('required') or 2} people confirm it."
            )
        if what == "expired":
            return f"{alert.capitalize()} naming {people} in {where} expired unconfirmed."
        status = f" (now {d['status']})" if d.get("status") else ""
        return f"{who} {what} {alert} naming {people} in {where}{status}."

    return say


def _key(what: str) -> _Say:
    def say(who: str, _w: str, _p: str, d: dict[str, Any], _n: Mapping[str, str]) -> str:
        label = f" ({d['name']})" if d.get("name") else ""
        scopes = ", ".join(d.get("scopes") or []) or "none"
        return f"{who} {what} key {d.get('key') or '(unknown)'}{label} with scopes {scopes}."

    return say


def _retention(who: str, where: str, _p: str, d: dict[str, Any], _: Mapping[str, str]) -> str:
    new = d.get("new") or {}
    if new.get("max_idle_days") is None:
        return f"{who} set the retention policy of {where}."
    return (
        f"{who} set the retention policy of {where}: erase after "
        f"{new['max_idle_days']} days unmatched, {new.get('consent_grace_days', 0)} days "
        "after consent ends."
    )


_SENTENCES: dict[str, _Say] = {
    "identify": _identify,
    "verify": _verify,
    "enroll": _enroll,
    "enroll_override": lambda who, where, people, d, n: (
        _enroll(who, where, people, d, n)[:-1]
        + f", although they did not match (override: {d.get('override', '')})."
    ),
    "delete": _delete,
    "purge": _purge,
    "rename": lambda who, where, _p, d, _n: (
        f"{who} renamed a person of {where}" + (f" to {d['name']}." if d.get("name") else ".")
    ),
    "consent_added": lambda who, where, people, d, _n: (
        f"{who} recorded the consent of {people} in {where}"
        + (f' for "{d["purpose"]}"' if d.get("purpose") else "")
        + (f" until {str(d['expires_at'])[:10]}." if d.get("expires_at") else ", without end.")
    ),
    "consent_withdrawn": lambda who, where, people, _d, _n: (
        f"{who} recorded that {people} withdrew consent in {where}."
    ),
    "purge_archive": lambda who, where, _p, d, _n: (
        f"{who} erased {_plural(int(d.get('faces', 0)), 'unnamed face')} of the photo archive of "
        f"{where}"
        + (f", indexed more than {d['max_idle_days']} days ago." if d.get("max_idle_days") else ".")
    ),
    "retention_policy": _retention,
    "stream_start": _stream("stream_start"),
    "stream_stop": _stream("stream_stop"),
    "redact_start": _stream("redact_start"),
    "redact_stop": _stream("redact_stop"),
    "alert_raised": _alert("raised"),
    "alert_confirm": _alert("confirmed"),
    "alert_reject": _alert("rejected"),
    "alert_expired": _alert("expired"),
    "stop": lambda who, _w, _p, d, _n: (
        f"{who} stopped all identification" + (f": {d['reason']}." if d.get("reason") else ".")
    ),
    "resume": lambda who, _w, _p, _d, _n: f"{who} resumed identification.",
    "key_created": _key("created"),
    "key_revoked": _key("revoked"),
    "rotate_key": lambda who, _w, _p, d, _n: (
        f"{who} sealed the store with template key {d.get('new_key') or '(unknown)'}"
        + (f" (was {d['old_key']})." if d.get("old_key") else " (it had none).")
    ),
}
