"""The web UI in a real browser (Debian's chromium, driven by Playwright): enrol a person
from a photo, identify another photo of them and see the name on the image, delete them and
see the audit entry. Screenshots go to artifacts/screenshots/."""

from __future__ import annotations

from pathlib import Path

from tests.service.conftest import Service

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"


def test_enrol_identify_delete_in_the_browser(browser, service: Service, data: Path) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    knn = data / "faces" / "face_recognition" / "knn_examples"
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(service.url + "/")
    page.fill("#api-key", "fl_wrong_key")
    page.click("#sign-in-form button")
    page.wait_for_selector("text=That key is not valid.")
    page.fill("#api-key", service.keys["admin"])
    page.click("#sign-in-form button")
    page.wait_for_selector("#app:not([hidden])")
    page.screenshot(path=str(SHOTS / "01-signed-in.png"))

    # enrol from a photo, with consent
    page.fill("#enroll-name", "Kit Harington")
    page.set_input_files(
        "#enroll-photos", [str(p) for p in sorted((knn / "train" / "kit_harington").iterdir())]
    )
    page.fill("#consent-purpose", "film set access")
    page.fill("#consent-by", "Kit Harington")
    page.click("#enroll-form button[type=submit]")
    page.wait_for_selector("#enroll-result >> text=Enrolled Kit Harington")
    page.wait_for_selector("#people-table >> text=Kit Harington")
    page.click("#people-table .person-name")
    page.wait_for_selector("#person-detail >> text=film set access")
    page.screenshot(path=str(SHOTS / "02-enrolled.png"))

    # identify another photo of him: his name is drawn on the image
    page.click("button[data-tab=identify]")
    page.set_input_files("#identify-photo", str(knn / "test" / "johnsnow_test1.jpg"))
    page.click("#identify-form button[type=submit]")
    page.wait_for_selector("[data-testid=identify-result]")
    assert "Kit Harington" in page.inner_text("#identify-list")
    labels = page.get_attribute("#identify-canvas", "data-labels")
    assert labels is not None and "Kit Harington" in labels.split("|")
    assert page.is_visible("#identify-canvas")
    page.screenshot(path=str(SHOTS / "03-identified.png"))

    # delete him, confirming in the dialog; the audit log shows the erasure
    page.click("button[data-tab=people]")
    page.click("#people-table button.delete")
    page.wait_for_selector("#confirm-dialog[open]")
    page.screenshot(path=str(SHOTS / "04-confirm-delete.png"))
    page.click("#confirm-ok")
    page.wait_for_selector("#flash >> text=Erased Kit Harington")
    page.click("button[data-tab=audit]")
    page.wait_for_selector("#audit-table tr[data-action=delete]")
    assert "chain verified" in page.inner_text("#audit-status")
    page.screenshot(path=str(SHOTS / "05-audit.png"))
    page.close()


def test_the_stop_button_halts_identification(browser, service: Service, data: Path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("dialog", lambda d: d.accept("fire drill"))  # the reason asked for
    page.goto(service.url + "/")
    page.fill("#api-key", service.keys["admin"])
    page.click("#sign-in-form button")
    page.wait_for_selector("#app:not([hidden])")
    page.click("button[data-tab=live]")
    page.wait_for_selector("#stop-state >> text=Identification running")
    page.click("#stop-toggle")
    try:
        page.wait_for_selector("#stop-state >> text=STOPPED")
        assert "fire drill" in page.inner_text("#stop-state")
        page.screenshot(path=str(SHOTS / "06-stopped.png"))
        photo = data / "faces" / "face_recognition" / "obama.jpg"
        r = httpx.post(
            service.url + "/v1/galleries/default/identify",
            headers={"Authorization": f"Bearer {service.keys['identify']}"},
            files={"image": ("o.jpg", photo.read_bytes(), "image/jpeg")},
        )
        assert r.status_code == 423
        page.click("#stop-toggle")
        page.wait_for_selector("#stop-state >> text=Identification running")
    finally:
        httpx.post(  # whatever happened above, the service is left running
            service.url + "/v1/govern/resume",
            headers={"Authorization": f"Bearer {service.keys['admin']}"},
        )
    page.close()


def test_the_privacy_page_reports_a_gallery(browser, service: Service, data: Path) -> None:  # type: ignore[no-untyped-def]
    import httpx

    knn = data / "faces" / "face_recognition" / "knn_examples"
    admin = {"Authorization": f"Bearer {service.keys['admin']}"}
    with httpx.Client(base_url=service.url, timeout=60) as c:
        c.post("/v1/galleries", json={"name": "dpia"}, headers=admin)
        r = c.post(
            "/v1/galleries/dpia/identities",
            headers=admin,
            data={"name": "Barack Obama", "consent_purpose": "door", "consent_granted_by": "B"},
            files=[
                ("images", (p.name, p.read_bytes(), "image/jpeg"))
                for p in sorted((knn / "train" / "obama").iterdir())
            ],
        )
        assert r.status_code == 201, r.text
        r = c.post(
            "/v1/galleries/dpia/identify",
            headers=admin,
            files={"image": ("o.jpg", (knn / "test" / "obama1.jpg").read_bytes(), "image/jpeg")},
        )
        assert r.status_code == 200, r.text
        admin_id = service.keys["admin"].split("_")[1]
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(service.url + "/")
    page.fill("#api-key", service.keys["admin"])
    page.click("#sign-in-form button")
    page.wait_for_selector("#app:not([hidden])")
    page.click("button[data-tab=privacy]")
    card = page.wait_for_selector(".privacy-gallery[data-gallery=dpia]")
    assert card is not None
    assert card.query_selector(".people").inner_text() == "1"  # type: ignore[union-attr]
    assert card.query_selector(".pending").inner_text() == "0"  # type: ignore[union-attr]
    assert f"{admin_id}: 1" in card.query_selector(".searches").inner_text()  # type: ignore[union-attr]
    assert "NOT sealed" in page.inner_text("#privacy-sealed")  # this test service has no key
    page.screenshot(path=str(SHOTS / "07-privacy.png"), full_page=True)
    page.close()
