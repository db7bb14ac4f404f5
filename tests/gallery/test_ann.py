"""The embedded store's approximate index: exact below a size, HNSW above it, kept in step
incrementally, persisted, and never able to return a deleted identity."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from facelens import Embeddings
from facelens.gallery import AnnConfig, Consent, NewSample, SqliteStore
from facelens.gallery.ann import HnswIndex
from facelens.gallery.gallery import RawGallery
from facelens.gallery.records import Identity, Sample

MODEL = "dlib_resnet_v1"
CFG = AnnConfig(min_samples=400, m=16, save_every=10**9)
NOW = "2026-01-01T00:00:00+00:00"


def vectors(n: int, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=(n, 128)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def fill(store: SqliteStore, v: np.ndarray, start: int = 0) -> None:
    """Import ``len(v)`` identities P<start>... with one sample each, in one transaction."""
    items = []
    for j, e in enumerate(v, start):
        c = Consent(purpose="p", granted_by="x", granted_at=NOW)
        ident = Identity(f"id{j:06d}", "default", f"P{j:06d}", {}, NOW, NOW, 1, (c,))
        items.append((ident, [Sample(f"s{j:06d}", ident.id, MODEL, e, {}, f"{j:064x}", None, NOW)]))
    store.import_identities("default", items)


def top1(g: RawGallery, v: np.ndarray) -> list[str]:
    return [c[0].name if c else "" for c in g.search(Embeddings(v, MODEL), k=1)]


def test_small_galleries_are_searched_exactly(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "g.db", ann=CFG)
    v = vectors(300)
    fill(store, v)
    assert top1(RawGallery(store), v[:50]) == [f"P{j:06d}" for j in range(50)]
    assert store.index_info("default", MODEL) is None
    assert not store.ann_folder.exists()
    store.close()


def test_the_index_is_built_updated_and_persisted(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = SqliteStore(path, ann=CFG)
    g = RawGallery(store)
    v = vectors(600)
    fill(store, v)
    assert top1(g, v) == [f"P{j:06d}" for j in range(600)]  # recall 1.0 at this size
    info = store.index_info("default", MODEL)
    assert info is not None and info["samples"] == 600
    # enrolment and deletion update it in place (no rebuild: the dead node stays)
    new = vectors(1, seed=7)
    g.enroll("Newcomer", [NewSample(new[0], MODEL, {}, "n" * 64)], Consent("p", "x", NOW))
    assert top1(g, new) == ["Newcomer"]
    g.delete("P000005", by="name")
    assert top1(g, v[5:6]) != ["P000005"]
    assert store.index_info("default", MODEL) == {
        "samples": 600,
        "nodes": 601,
        "generation": store.generation(),
        "dead_fraction": pytest.approx(1 / 601, abs=1e-4),
    }
    store.close()  # saves
    files = sorted(p.name for p in store.ann_folder.iterdir())
    assert any(f.endswith(".faiss") for f in files) and any(f.endswith(".json") for f in files)
    # a new process loads it (601 nodes: loaded, not rebuilt) and catches up with changes
    other = SqliteStore(path, ann=CFG)
    RawGallery(other).delete("P000006", by="name")
    other.close()
    again = SqliteStore(path, ann=CFG)
    found = top1(RawGallery(again), v[6:8])
    assert found[0] != "P000006" and found[1] == "P000007"
    assert again.index_info("default", MODEL)["nodes"] == 601  # type: ignore[index]
    again.close()


def test_a_stale_index_never_returns_a_deleted_identity(tmp_path: Path) -> None:
    path = tmp_path / "g.db"
    store = SqliteStore(path, ann=CFG)
    v = vectors(500)
    fill(store, v)
    assert top1(RawGallery(store), v[:1]) == ["P000000"]
    store.close()
    old = tmp_path / "old.ann"
    shutil.copytree(store.ann_folder, old)
    # erase P000000 with a store that knows nothing of the index
    plain = SqliteStore(path, ann=AnnConfig(min_samples=10**9))
    RawGallery(plain).delete("P000000", by="name")
    generation = plain.generation()
    plain.close()
    # put back the index from before the erasure, and make it claim to be up to date
    shutil.rmtree(store.ann_folder)
    shutil.copytree(old, store.ann_folder)
    meta = next(store.ann_folder.glob("*.json"))
    doc = json.loads(meta.read_text())
    doc["generation"] = generation
    meta.write_text(json.dumps(doc))
    reopened = SqliteStore(path, ann=CFG)
    found = RawGallery(reopened).search(Embeddings(v[:1], MODEL), k=5)[0]
    assert found and all(c.name != "P000000" for c in found)
    assert len(found) == 5  # the graph was asked again for enough live candidates
    reopened.close()


def test_an_index_of_another_file_is_not_used(tmp_path: Path) -> None:
    a = SqliteStore(tmp_path / "a.db", ann=CFG)
    fill(a, vectors(450))
    RawGallery(a).search(Embeddings(vectors(1, 9), MODEL))
    a.close()
    b = SqliteStore(tmp_path / "b.db", ann=CFG)
    fill(b, vectors(450, seed=3))
    shutil.copytree(a.ann_folder, b.ann_folder)  # someone copied the wrong folder
    assert HnswIndex.load(b.ann_folder, "default", MODEL, b.store_id, CFG) is None
    w = vectors(450, seed=3)
    assert top1(RawGallery(b), w[:20]) == [f"P{j:06d}" for j in range(20)]
    b.close()


def test_shrinking_and_heavy_deletion(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "g.db", ann=CFG)
    g = RawGallery(store)
    v = vectors(500)
    fill(store, v)
    top1(g, v[:1])
    for j in range(150):  # 30 % dead: the graph is rebuilt without them (in the background)
        store.delete("default", store.find_identity("default", f"P{j:06d}").id)  # type: ignore[union-attr]
    assert top1(g, v[150:160]) == [f"P{j:06d}" for j in range(150, 160)]
    deadline = time.time() + 30
    while store.index_info("default", MODEL)["nodes"] != 350 and time.time() < deadline:  # type: ignore[index]
        time.sleep(0.05)
    assert store.index_info("default", MODEL)["nodes"] == 350  # type: ignore[index]
    for j in range(150, 360):  # below half the threshold: back to exact search
        store.delete("default", store.find_identity("default", f"P{j:06d}").id)  # type: ignore[union-attr]
    assert top1(g, v[360:370]) == [f"P{j:06d}" for j in range(360, 370)]
    assert store.index_info("default", MODEL) is None
    store.close()


def _thp_mode() -> str:
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "absent"
    return text.split("[", 1)[1].split("]", 1)[0]


def _huge_kib(addr: int) -> int:
    """AnonHugePages of the mapping holding ``addr`` in this process."""
    lines = Path("/proc/self/smaps").read_text().splitlines()
    inside = False
    for line in lines:
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            lo, hi = (int(x, 16) for x in head.split("-"))
            inside = lo <= addr < hi
        elif inside and head == "AnonHugePages:":
            return int(line.split()[1])
    return 0


@pytest.mark.skipif(
    _thp_mode() not in ("always", "madvise"),
    reason="this kernel offers no transparent huge pages (Linux only; mode 'never' or absent)",
)
def test_the_index_asks_for_huge_pages_and_searches_the_same() -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(size=(40_000, 128)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    plain = HnswIndex(128, AnnConfig(m=16, huge_pages=False))
    huge = HnswIndex(128, AnnConfig(m=16))
    for ix in (plain, huge):
        ix.add(np.arange(1, len(v) + 1), v)
    # the same graph and answers; only the memory behind it differs
    assert np.array_equal(plain.search(v[:50], 10)[0], huge.search(v[:50], 10)[0])
    import faiss

    codes = faiss.downcast_index(huge.index.storage).codes
    addr = int(faiss.rev_swig_ptr(codes.data(), 1).ctypes.data)
    assert codes.size() >= 8 << 20  # 40,000 half-precision vectors: 10 MB
    first_whole_page = (addr + (2 << 20) - 1) & ~((2 << 20) - 1)
    assert _huge_kib(first_whole_page) >= 2048  # 2 MiB pages behind the vectors


def test_the_index_is_built_outside_the_store_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # at a million samples a build takes minutes: it used to run inside a search, holding
    # the lock that every read and API-key lookup takes
    import threading
    import time

    store = SqliteStore(tmp_path / "g.db", ann=CFG)
    g = RawGallery(store)
    v = vectors(600)
    fill(store, v)
    slow_add = HnswIndex.add
    building = threading.Event()

    def add(self: HnswIndex, seqs: np.ndarray, vecs: np.ndarray) -> None:
        building.set()
        time.sleep(3)  # a large build
        slow_add(self, seqs, vecs)

    monkeypatch.setattr(HnswIndex, "add", add)
    first = threading.Thread(target=top1, args=(g, v[:1]))
    first.start()
    assert building.wait(30)
    t0 = time.perf_counter()
    # meanwhile: reads, counts and searches (exact, until the index is in) all answer
    assert store.generation() >= 0
    assert store.count_identities("default") == 600
    assert top1(g, v[10:20]) == [f"P{j:06d}" for j in range(10, 20)]
    assert time.perf_counter() - t0 < 1.5
    assert store.index_info("default", MODEL) is None  # not swapped in yet
    first.join(60)
    info = store.index_info("default", MODEL)
    assert info is not None and info["samples"] == 600
    store.close()


def test_a_rebuild_runs_in_the_background_while_the_old_index_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    import time

    store = SqliteStore(tmp_path / "g.db", ann=CFG)
    g = RawGallery(store)
    v = vectors(600)
    fill(store, v)
    top1(g, v[:1])
    old = store._indexes[("default", MODEL)]
    slow_add = HnswIndex.add
    release = threading.Event()

    def add(self: HnswIndex, seqs: np.ndarray, vecs: np.ndarray) -> None:
        if self is not old:
            release.wait(30)
        slow_add(self, seqs, vecs)

    monkeypatch.setattr(HnswIndex, "add", add)
    for j in range(200):  # a third dead: time for a new graph
        store.delete("default", store.find_identity("default", f"P{j:06d}").id)  # type: ignore[union-attr]
    t0 = time.perf_counter()
    assert top1(g, v[300:310]) == [f"P{j:06d}" for j in range(300, 310)]
    assert time.perf_counter() - t0 < 2  # answered by the old index, not after the rebuild
    assert store._indexes[("default", MODEL)] is old
    release.set()
    deadline = time.time() + 30
    while store._indexes[("default", MODEL)] is old and time.time() < deadline:
        time.sleep(0.05)
    assert store.index_info("default", MODEL)["nodes"] == 400  # type: ignore[index]
    assert top1(g, v[300:310]) == [f"P{j:06d}" for j in range(300, 310)]
    store.close()


def test_a_half_precision_graph_answers_with_exact_scores(tmp_path: Path) -> None:
    """The default graph holds half-precision vectors; candidates are re-ranked with the stored
    templates, so names and scores equal exact search's. An index saved with float32 vectors
    (before fp16 was the default) is used as it is."""
    v = vectors(800, seed=11)
    probes = v[:40] + np.random.default_rng(2).normal(0, 0.05, (40, 128)).astype(np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    exact_store = SqliteStore(tmp_path / "exact.db", ann=AnnConfig(min_samples=10**9))
    fill(exact_store, v)
    want = RawGallery(exact_store).search(Embeddings(probes, MODEL), k=3)
    exact_store.close()
    for storage in ("fp16", "flat"):
        path = tmp_path / f"{storage}.db"
        store = SqliteStore(path, ann=AnnConfig(min_samples=400, m=16, storage=storage))
        fill(store, v)
        got = RawGallery(store).search(Embeddings(probes, MODEL), k=3)
        assert store.index_info("default", MODEL) is not None
        ix = next(iter(store._indexes.values()))
        assert ix.exact_scores is (storage == "flat")
        assert [[c.name for c in r] for r in got] == [[c.name for c in r] for r in want]
        assert all(
            a.score == pytest.approx(b.score, abs=1e-6)
            for ra, rb in zip(got, want, strict=True)
            for a, b in zip(ra, rb, strict=True)
        )
        store.close()
    # the float32 file, opened by a store whose default is fp16: used, scores still exact
    reopened = SqliteStore(tmp_path / "flat.db", ann=AnnConfig(min_samples=400, m=16))
    got = RawGallery(reopened).search(Embeddings(probes, MODEL), k=3)
    assert next(iter(reopened._indexes.values())).exact_scores
    assert [[c.name for c in r] for r in got] == [[c.name for c in r] for r in want]
    reopened.close()
    with pytest.raises(ValueError, match="fp16 or flat"):
        AnnConfig(storage="int4")
