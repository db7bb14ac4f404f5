"""The service answers from a gallery enrolled with another recognizer than its default (and
says so, in the answer and in the gallery list the web UI shows); a recognizer the operator
named that a gallery has no templates of is a 409 naming how many people are enrolled."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tests.service.conftest import running_service

from facelens import EmbedConfig, Gallery, Pipeline, PipelineConfig
from facelens.embed.base import template_tag
from facelens.gallery import Consent, SqliteStore
from facelens.govern import KeyStore
from facelens.service.app import ServiceSettings

DEFAULT = template_tag(EmbedConfig())
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CONSENT = Consent(purpose="test", granted_by="test", granted_at="2026-01-01T00:00:00Z")


def other_model() -> str:
    """A recognizer that is not the default (the test holds whichever the default is)."""
    return "sface" if template_tag(EmbedConfig(model="sface")) != DEFAULT else "dlib"


def test_a_gallery_of_another_recognizer_answers_and_says_so(  # type: ignore[no-untyped-def]
    browser, tmp_path: Path, data: Path
) -> None:
    knn = data / "faces" / "face_recognition" / "knn_examples"
    path = tmp_path / "store.db"
    store = SqliteStore(path)
    key = KeyStore(store).create("acme", ["identify", "enroll"], "k")[1]
    store.close()
    model = other_model()
    old = Pipeline(PipelineConfig(embed=EmbedConfig(model=model)))
    with Gallery.open(path, tenant="acme", name="legacy") as legacy:
        for who in ("obama", "biden"):
            legacy.enroll(old, who, sorted((knn / "train" / who).iterdir()), CONSENT)
    tag = template_tag(EmbedConfig(model=model))
    headers = {"Authorization": f"Bearer {key}"}
    probe = ("o.jpg", (knn / "test" / "obama1.jpg").read_bytes(), "image/jpeg")
    import httpx

    settings = ServiceSettings(gallery_path=path)
    with running_service(settings) as url, httpx.Client(base_url=url, headers=headers) as c:
        listed = {g["name"]: g for g in c.get("/v1/galleries").json()}
        assert listed["legacy"]["answers_with"] == tag
        assert DEFAULT in listed["legacy"]["notice"] and "retemplate" in listed["legacy"]["notice"]
        r = c.post("/v1/galleries/legacy/identify", files={"image": probe}, timeout=120)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["model"] == tag and DEFAULT in doc["notice"]
        assert [f["identity"]["name"] for f in doc["faces"]] == ["obama"]
        # the web UI says which recognizer the chosen gallery answers with
        page = browser.new_page()
        page.goto(url + "/")
        page.fill("#api-key", key)
        page.click("#sign-in-form button")
        page.wait_for_selector("#app:not([hidden])")
        page.select_option("#gallery-select", "legacy")
        page.wait_for_selector(f"#gallery-model >> text=answers with {tag}")
        assert DEFAULT in (page.get_attribute("#gallery-model", "title") or "")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / "gallery-answers-with.png"))
        page.close()
    # the operator named the default recognizer: the gallery holds none of its templates
    named = replace(settings, model=EmbedConfig().model)
    with running_service(named) as url, httpx.Client(base_url=url, headers=headers) as c:
        r = c.post("/v1/galleries/legacy/identify", files={"image": probe}, timeout=120)
        assert r.status_code == 409, r.text
        err = r.json()
        assert err["error"] == "no_templates"
        assert err["detail"].startswith(
            f"2 people are enrolled, none with {EmbedConfig().model} templates ({DEFAULT})"
        )
        listed = {g["name"]: g for g in c.get("/v1/galleries").json()}
        assert listed["legacy"]["answers_with"] is None and "2 people" in listed["legacy"]["notice"]
