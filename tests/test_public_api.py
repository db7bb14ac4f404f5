"""The public API is small, explicit and sorted; importing it stays cheap."""

import subprocess
import sys

import facelens


def test_all_is_sorted_and_complete() -> None:
    assert facelens.__all__ == sorted(facelens.__all__)
    public = {n for n in dir(facelens) if not n.startswith("_")}
    # Every exported name exists; every public callable or class at top level is exported.
    for name in facelens.__all__:
        assert hasattr(facelens, name), name
    exported_objects = {n for n in public if not isinstance(getattr(facelens, n), type(facelens))}
    assert exported_objects <= set(facelens.__all__)


def test_import_loads_no_native_library_or_model() -> None:
    code = (
        "import sys, facelens; "
        "print(sorted(m for m in ('dlib', 'cv2', 'PIL', 'onnxruntime') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == "[]"


def test_verbs_take_previous_stage_output(pipeline: facelens.Pipeline, fr_photos) -> None:  # type: ignore[no-untyped-def]
    img = facelens.load_image(fr_photos / "obama.jpg")
    faces = facelens.detect(img)
    assert len(faces) == 1
    e = facelens.embed(img, faces)
    # one template of 128 values per recognizer of the default (a fusion joins them)
    assert len(e) == 1 and e.dim == 128 * len(pipeline.embedder.parts)
    v = facelens.verify(e, facelens.embed(facelens.load_image(fr_photos / "obama2.jpg")))
    assert v.same
