""" "Faces in your photos": the archive's groups over the API and in a real browser (merge,
split, move out, name with consent), and what a hostile caller cannot do with it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from tests.service.conftest import running_service

from facelens.archive import Archive, IndexConfig, Indexer
from facelens.embed import EmbedConfig
from facelens.gallery import SqliteStore
from facelens.govern import KeyStore
from facelens.pipeline import Pipeline, PipelineConfig
from facelens.runtime import RuntimeConfig
from facelens.service.app import ServiceSettings

ROOT_SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"


@dataclass
class ArchiveService:
    url: str
    keys: dict[str, str]
    photos: Path
    store: Path

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {self.keys[key]}"}, timeout=120
        )


@pytest.fixture(scope="module")
def archive_service(
    data: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ArchiveService]:
    root = tmp_path_factory.mktemp("archive-svc")
    photos = root / "photos"
    shutil.copytree(data / "faces" / "bbt", photos)
    path = root / "store.db"
    pipe = Pipeline(
        PipelineConfig(embed=EmbedConfig(model="dlib+sface"), runtime=RuntimeConfig(threads=1))
    )
    with SqliteStore(path) as store:
        store.ensure_gallery("acme/default")
        Indexer(Archive(store, "acme/default"), lambda: pipe, IndexConfig(workers=1)).run([photos])
        store.ensure_gallery("acme/strangers")  # one group shot: every face alone
        lonely = Indexer(Archive(store, "acme/strangers"), lambda: pipe, IndexConfig(workers=1))
        lonely.run([photos / "bbt1.jpg"])
        ks = KeyStore(store)
        keys = {
            "owner": ks.create("acme", ["enroll", "identify"], "owner")[1],
            "detect": ks.create("acme", ["detect"], "detect")[1],
            "other": ks.create("globex", ["admin"], "other")[1],
        }
    with running_service(ServiceSettings(gallery_path=path)) as url:
        yield ArchiveService(url, keys, photos, path)


def test_hostile_and_unauthorised_requests_get_nothing(archive_service: ArchiveService) -> None:
    with archive_service.client("owner") as c:
        listing = c.get("/v1/galleries/default/clusters").json()
        face = listing["clusters"][0]["preview"][0]
        assert (
            c.get(f"/v1/galleries/default/faces/{face}/thumbnail").headers["content-type"]
            == "image/jpeg"
        )
        for bad in ("..%2F..%2Fetc%2Fpasswd", "x" * 65, "a.b"):
            r = c.get(f"/v1/galleries/default/faces/{bad}/photo")
            assert r.status_code in (404, 422) and "/" not in r.json().get("detail", "")[:1]
        assert c.get("/v1/galleries/default/faces/000000000000/photo").status_code == 404
        r = c.post("/v1/galleries/default/clusters/cnope/name", json={"name": "X"})
        assert r.status_code == 404
    with archive_service.client("detect") as c:
        assert c.get("/v1/galleries/default/clusters").status_code == 403
    with archive_service.client("other") as c:  # another tenant: no such gallery
        assert c.get("/v1/galleries/default/clusters").status_code == 404
        assert c.get(f"/v1/galleries/default/faces/{face}/thumbnail").status_code == 404


def test_faces_are_grouped_once_until_asked_again(archive_service: ArchiveService) -> None:
    def grouped_at() -> str | None:
        with SqliteStore(archive_service.store) as store:
            return Archive(store, "acme/strangers").grouped_at()

    with archive_service.client("owner") as c:
        first = c.get("/v1/galleries/strangers/clusters").json()
        assert first["archive"]["faces"] >= 4 and first["clusters"] == []  # all alone
        when = grouped_at()
        assert when is not None
        assert c.get("/v1/galleries/strangers/clusters").json()["clusters"] == []
        assert grouped_at() == when  # not grouped again on every look
        assert c.get("/v1/galleries/strangers/clusters?refresh=true").is_success
        assert (grouped_at() or "") > when


def test_a_photo_changed_since_indexing_gives_no_picture(archive_service: ArchiveService) -> None:
    with archive_service.client("owner") as c:
        cid = c.get("/v1/galleries/default/clusters").json()["clusters"][-1]["id"]
        faces = c.get(f"/v1/galleries/default/clusters/{cid}").json()["faces"]
        victim = faces[0]
        path = Path(victim["path"])
        original = path.read_bytes()
        try:
            path.write_bytes(original + b"\0")
            r = c.get(f"/v1/galleries/default/faces/{victim['face_id']}/thumbnail")
            assert r.status_code == 404 and str(path) not in r.text
        finally:
            path.write_bytes(original)
        assert c.get(f"/v1/galleries/default/faces/{victim['face_id']}/thumbnail").is_success


def test_faces_in_your_photos_in_the_browser(browser, archive_service: ArchiveService) -> None:  # type: ignore[no-untyped-def]
    ROOT_SHOTS.mkdir(parents=True, exist_ok=True)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.goto(archive_service.url + "/")
    page.fill("#api-key", archive_service.keys["owner"])
    page.click("#sign-in-form button")
    page.wait_for_selector("#app:not([hidden])")
    page.click("button[data-tab=archive]")
    page.wait_for_selector(".cluster-row img.thumb")
    rows = page.locator(".cluster-row")
    count = rows.count()
    assert count >= 6
    loaded = page.eval_on_selector_all(
        ".cluster-row img.thumb", "els => els.map(e => e.naturalWidth)"
    )
    assert loaded and all(w == 112 for w in loaded)
    # each row reads left to right: its checkbox, then its faces
    pick, thumbs = page.eval_on_selector_all(
        ".cluster-row:first-child .pick, .cluster-row:first-child .thumbs",
        "els => els.map(e => e.getBoundingClientRect())",
    )
    assert pick["width"] < 30 and pick["right"] < thumbs["left"] < pick["right"] + 40
    page.screenshot(path=str(ROOT_SHOTS / "10-faces-in-your-photos.png"))

    # merge the last two groups
    rows.nth(count - 1).locator(".pick").check()
    rows.nth(count - 2).locator(".pick").check()
    page.click("#clusters-merge")
    page.wait_for_selector("#flash >> text=Merged into")
    page.wait_for_function(
        f"() => document.querySelectorAll('.cluster-row').length === {count - 1}"
    )

    # open the largest group: its faces and photos; split one face off, take another out
    page.locator(".cluster-row").first.locator("button.open").click()
    page.wait_for_selector("#cluster-detail figure.face")
    assert page.locator("#cluster-photos li").count() >= 3
    # the group opens where the operator is looking, not below the list
    top, seen = page.eval_on_selector(
        "#cluster-detail", "e => [e.getBoundingClientRect().top, window.innerHeight]"
    )
    assert top >= 0 and top + 150 < seen  # its heading and first faces in view
    page.locator("#cluster-detail figure.face img").first.click()
    page.wait_for_selector("#cluster-photo:not([hidden])")
    page.screenshot(path=str(ROOT_SHOTS / "11-a-group-and-its-photos.png"))
    page.locator("#cluster-detail .split-pick").first.check()
    page.click("#split-selected")
    page.wait_for_selector("#flash >> text=Split into")
    page.locator(".cluster-row").first.locator("button.open").click()
    page.wait_for_selector("#cluster-detail figure.face")
    page.locator("#cluster-detail button.not-them").last.click()
    page.wait_for_selector("#flash >> text=Taken out of the group")

    # naming needs consent: refused without it, an enrolment with it
    page.locator(".cluster-row").first.locator("button.name").click()
    page.fill("#name-name", "Leonard")
    page.click("#name-ok")
    page.wait_for_selector("#name-error >> text=consent")
    page.screenshot(path=str(ROOT_SHOTS / "12-naming-needs-consent.png"))
    page.fill("#name-purpose", "family photo album")
    page.fill("#name-by", "Leonard")
    page.click("#name-ok")
    page.wait_for_selector("#flash >> text=Enrolled Leonard")
    assert re.search(r"from \d+ faces? of the group", page.inner_text("#flash"))
    page.click("button[data-tab=people]")
    page.wait_for_selector("#people-table >> text=Leonard")
    page.close()
