"""The Python API's gallery is the governed one (``facelens.Gallery``): the stop control,
consent, the enrolment integrity check, the name rules and one audit record per call, refusals
included - the same promises the command line and the service keep, from the same place."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

import facelens
from facelens import Consent, Gallery, Pipeline
from facelens.errors import (
    ConflictError,
    ConsentError,
    IdentityMismatchError,
    InputError,
    NotFoundError,
    StoppedError,
)
from facelens.govern import StopControl

CONSENT = Consent(purpose="door", granted_by="the person", granted_at="2026-01-01T00:00:00Z")


@pytest.fixture
def gallery(tmp_path: Path) -> Iterator[Gallery]:
    with Gallery.open(tmp_path / "g.db", actor="python:test") as g:
        yield g


def operator(gallery: Gallery, *argv: str) -> None:
    """What an operator does from the command line to the same store (stop, resume)."""
    from facelens.cli.main import main

    path = str(gallery._raw.store.location)  # the store the test's gallery is in
    assert main(["govern", *argv, "--gallery", path]) == 0


@pytest.fixture
def obama(gallery: Gallery, pipeline: Pipeline, fr_photos: Path) -> str:
    """Obama enrolled from his two training photos; returns his id."""
    train = sorted((fr_photos / "knn_examples" / "train" / "obama").iterdir())
    return gallery.enroll(pipeline, "obama", train, CONSENT).result.identity.id


def actions(g: Gallery) -> list[str]:
    return [r.action for r in g.audit.records()]


def test_each_call_leaves_exactly_one_record_and_so_does_each_refusal(
    gallery: Gallery, pipeline: Pipeline, fr_photos: Path
) -> None:
    train = sorted((fr_photos / "knn_examples" / "train" / "obama").iterdir())
    with pytest.raises(ConsentError):
        gallery.enroll(pipeline, "obama", train, None)  # refused before any photo is read
    assert actions(gallery) == ["enroll_refused"]
    rec = gallery.audit.records()[-1]
    assert rec.key_id == "python:test" and "no consent record" in rec.decision["why"]
    oid = gallery.enroll(pipeline, "obama", train, CONSENT).result.identity.id
    emb = facelens.embed(facelens.load_image(fr_photos / "obama2.jpg"))
    (found,) = facelens.identify(emb, gallery)  # the README's verb: audited too
    assert found.identity is not None and found.identity.identity_id == oid
    with pytest.raises(NotFoundError):
        gallery.delete("nobody", by="name")
    gallery.delete(oid)
    assert actions(gallery) == [
        "enroll_refused",
        "enroll",
        "identify",
        "delete_refused",
        "delete",
    ]
    search = gallery.audit.records()[2]
    assert search.decision["identified"] == [oid] and search.probe_sha256
    assert gallery.audit.verify().ok


def test_the_stop_control_holds_for_the_python_api(
    gallery: Gallery, obama: str, fr_photos: Path
) -> None:
    emb = facelens.embed(facelens.load_image(fr_photos / "obama2.jpg"))
    operator(gallery, "stop", "--reason", "drill")
    with pytest.raises(StoppedError, match="drill"):
        facelens.identify(emb, gallery)
    with pytest.raises(StoppedError):  # a stream may not start either
        gallery.stream_started("camera 1", emb.model)
    assert actions(gallery)[-3:] == ["stop", "identify_refused", "stream_start_refused"]
    operator(gallery, "resume")
    assert facelens.identify(emb, gallery)[0].identity is not None
    assert actions(gallery)[-2:] == ["resume", "identify"]


def test_a_stream_searches_only_within_its_period_and_stops_with_the_operator(
    gallery: Gallery, obama: str, fr_photos: Path
) -> None:
    emb = facelens.embed(facelens.load_image(fr_photos / "obama2.jpg"))
    with pytest.raises(RuntimeError, match="stream_started"):
        gallery.stream_search(emb, 1)
    gallery.stream_started("camera 1", emb.model)
    assert gallery.stream_search(emb, 1)[0][0].identity_id == obama
    operator(gallery, "stop")
    with pytest.raises(StoppedError):  # the next search after the stop is refused...
        for _ in range(200):  # ...within a second
            gallery.stream_search(emb, 1)
            __import__("time").sleep(0.01)
    gallery.stream_stopped("camera 1", 10, {})
    assert actions(gallery)[-4:] == ["stream_start", "stop", "stream_search_refused", "stream_stop"]


def test_another_persons_photos_are_refused_for_an_enrolled_name(
    gallery: Gallery, obama: str, pipeline: Pipeline, fr_photos: Path
) -> None:
    biden = sorted((fr_photos / "knn_examples" / "train" / "biden").iterdir())
    with pytest.raises(IdentityMismatchError, match="strict threshold") as e:
        gallery.enroll(pipeline, "obama", biden, None)
    assert len(e.value.mismatched) == 2 and e.value.model == pipeline.model
    # the threshold is the model's calibrated strict point, never a number of the code's
    from facelens.match.thresholds import resolve_threshold

    assert e.value.threshold == resolve_threshold(pipeline.model, "strict", "strict")
    assert gallery.get(obama).sample_count == 2  # nothing added
    refused = gallery.audit.records()[-1]
    assert refused.action == "enroll_refused" and refused.decision["refused"] == (
        "IdentityMismatchError"
    )
    # his own other photos are added; the check is recorded with the enrolment
    more = [fr_photos / "obama-480p.jpg", fr_photos / "obama-720p.jpg"]
    r = gallery.enroll(pipeline, "obama", more, None).result
    assert not r.created and gallery.get(obama).sample_count == 4
    check = gallery.audit.records()[-1].decision["face_check"]
    assert check["mismatched"] == 0 and min(check["similarities"]) >= check["threshold"]
    # an override with a reason adds them, audited as such
    with pytest.raises(InputError, match="reason"):
        gallery.enroll(pipeline, "obama", biden, None, override="  ")
    gallery.enroll(pipeline, "obama", biden, None, override="same person, says the operator")
    rec = gallery.audit.records()[-1]
    assert rec.action == "enroll_override" and rec.decision["override"].startswith("same")
    assert rec.decision["face_check"]["mismatched"] == 2


def test_names_that_look_alike_or_hide_characters_are_refused(
    gallery: Gallery, obama: str, pipeline: Pipeline, fr_photos: Path
) -> None:
    photo = [fr_photos / "biden.jpg"]
    for look_alike in ("\u041ebama", "Obama", "0bama", "ob\u0430ma"):  # Cyrillic O, a
        with pytest.raises(ConflictError, match="looks the same"):
            gallery.enroll(pipeline, look_alike, photo, CONSENT)
    for hidden in ("oba\u200bma", "obama\u2028", "\u061cobama", "\ufeffobama", "obama\U000e0041"):
        with pytest.raises(InputError, match="U\\+"):
            gallery.enroll(pipeline, hidden, photo, CONSENT)
    # the NFD spelling of a name is the same identity (added to, face-checked)
    nfd = unicodedata.normalize("NFD", "Zoë")
    zoe = gallery.enroll(pipeline, "Zoë", photo, CONSENT).result.identity
    biden2 = fr_photos / "knn_examples" / "train" / "biden" / "biden2.jpg"
    again = gallery.enroll(pipeline, nfd, [biden2], None)
    assert again.result.identity.id == zoe.id and not again.result.created
    assert sorted(i.name for i in gallery.identities()) == ["Zoë", "obama"]


def test_ids_and_names_are_never_mixed_up(
    gallery: Gallery, obama: str, pipeline: Pipeline, fr_photos: Path
) -> None:
    biden = gallery.enroll(pipeline, "biden", [fr_photos / "biden.jpg"], CONSENT)
    bid = biden.result.identity.id
    with pytest.raises(InputError, match="that is an id"):
        gallery.rename(bid, obama)  # renaming Biden to Obama's id
    assert actions(gallery)[-1] == "rename_refused"
    with pytest.raises(NotFoundError):
        gallery.delete(obama, by="name")  # an id is no name
    with pytest.raises(NotFoundError):
        gallery.delete("biden")  # a name is no id
    assert {i.name for i in gallery.identities()} == {"obama", "biden"}
    gallery.delete("biden", by="name")
    assert [i.id for i in gallery.identities()] == [obama]


def test_text_fields_refuse_controls_everywhere(gallery: Gallery) -> None:
    with pytest.raises(InputError, match="purpose"):
        Consent(purpose="door\x1b[2J", granted_by="x", granted_at="2026-01-01T00:00:00Z")
    with pytest.raises(InputError, match="granted_by"):
        Consent(purpose="door", granted_by="x\u2028y", granted_at="2026-01-01T00:00:00Z")
    stop = StopControl(gallery._raw.store, gallery.audit)
    with pytest.raises(InputError, match="reason"):
        stop.stop("default", by="cli:x", reason="drill\u202e")
    assert not stop.status("default").stopped
