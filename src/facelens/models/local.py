"""A user's own models: registered from a file, declared, checked, calibrated.

``facelens models add FILE.onnx --name NAME --family arcface`` copies the file into the
user's models folder under its checksum, with a declaration (``Recognizer``) of what the
network expects, after checking that the file does what the declaration says: it loads, reads
one image input of the declared size and returns templates of the declared length, finite and
not all alike. ``registry.json`` in that folder lists each model with its declaration, its
licence (the user's statement) and, once ``facelens models calibrate NAME`` has run, its
thresholds and the command that measured them.

The template tag of a user's model is ``NAME@<first 12 hex digits of its SHA-256>``: a new
file under the same name is a new embedding space, never compared with the old one.

Example:
    >>> import tempfile
    >>> user_models(Path(tempfile.mkdtemp()))
    {}
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from facelens.errors import InputError, ModelError
from facelens.files import atomic_write
from facelens.models.registry import MODELS, ModelSpec, Recognizer

__all__ = [
    "MAX_MODEL_BYTES",
    "UserModel",
    "add_model",
    "remove_model",
    "save_calibration",
    "user_models",
]

log = logging.getLogger(__name__)

REGISTRY = "registry.json"
MAX_MODEL_BYTES = 1 << 30  # a face recognition network is tens to hundreds of MB
_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,47}$")
_lock = threading.Lock()
_cache: dict[str, tuple[int, int, dict[str, UserModel]]] = {}


@dataclass(frozen=True)
class UserModel:
    """One registered model.

    Attributes:
        spec: its registry entry (``spec.path`` is the copy in the models folder).
        added_at: when it was registered (UTC ISO 8601).
        calibrations: per template tag, what ``facelens models calibrate`` measured.
    """

    spec: ModelSpec
    added_at: str
    calibrations: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read(folder: Path) -> dict[str, Any]:
    path = folder / REGISTRY
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {"version": 1, "models": {}}
    except (OSError, ValueError) as e:
        raise ModelError("models", f"the models registry {REGISTRY} cannot be read ({e})") from None
    if not isinstance(doc, dict) or doc.get("version") != 1:
        raise ModelError("models", f"the models registry {REGISTRY} has an unknown format")
    return doc


def _write(folder: Path, doc: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / REGISTRY, json.dumps(doc, indent=1, sort_keys=True))


def _entry(folder: Path, name: str, e: dict[str, Any]) -> UserModel:
    d = dict(e["declaration"])
    rec = Recognizer(
        family=str(d["family"]),
        input_size=int(d["input_size"]),
        alignment=str(d["alignment"]),
        colour=str(d["colour"]),
        mean=(float(d["mean"][0]), float(d["mean"][1]), float(d["mean"][2])),
        std=float(d["std"]),
        dim=int(d["dim"]),
        batch=bool(d["batch"]),
    )
    spec = ModelSpec(
        name=name,
        kind="recognizer",
        filename=str(e["file"]),
        sha256=str(e["sha256"]),
        package="",
        module="",
        subdir="",
        licence=str(e.get("licence", "")),
        provenance=str(e.get("provenance", "")),
        convert="onnx_float",
        recognizer=rec,
        path=folder / str(e["file"]),
    )
    return UserModel(spec, str(e.get("added_at", "")), dict(e.get("calibrations", {})))


def user_models(folder: Path) -> dict[str, UserModel]:
    """The models registered in ``folder`` (read again when the registry file changes),
    with their stored calibrations as data (``ModelStore.calibration_records``): reading
    them changes nothing else."""
    path = folder / REGISTRY
    try:
        st = path.stat()
    except FileNotFoundError:
        return {}
    key = str(path.resolve())
    with _lock:
        hit = _cache.get(key)
        if hit and hit[0] == st.st_mtime_ns and hit[1] == st.st_size:
            return hit[2]
        doc = _read(folder)
        out: dict[str, UserModel] = {}
        for name, e in doc.get("models", {}).items():
            try:
                out[name] = _entry(folder, name, e)
            except (KeyError, TypeError, ValueError, IndexError) as err:
                log.warning("ignoring the malformed registry entry %r: %s", name, err)
        _cache[key] = (st.st_mtime_ns, st.st_size, out)
        return out


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise InputError(
            "--name",
            f"{name!r} is not a model name: use 1-48 lower-case letters, digits, '_', '-' or "
            "'.', starting with a letter",
        )
    if name in MODELS:
        raise InputError("--name", f"{name!r} is the name of a shipped model; choose another")


def add_model(
    folder: Path,
    source: Path,
    name: str,
    declaration: Recognizer,
    licence: str,
    *,
    check: Callable[[bytes, str, Recognizer], Recognizer],
    replace: bool = False,
) -> UserModel:
    """Register the ONNX recognizer ``source`` under ``name`` with ``declaration``.

    The file is copied into ``folder`` as ``NAME-<sha256[:12]>.onnx`` once ``check(data, name,
    declaration)`` has accepted it and returned the declaration to store (the recognizer
    stage's ``facelens.embed.onnx_generic.check_declaration_isolated``, which the command
    passes: in a limited process the file must load in ONNX Runtime within 2 GiB, and 4 bytes
    a byte of the file, of memory, take one image of the declared size and return templates
    of the declared length, read from the file's output when ``declaration.dim`` is 0). The
    model store runs no model itself.

    Raises:
        InputError: bad name, unreadable or oversized file.
        ModelError: the file is not an ONNX network matching the declaration, or the name is
            taken (unless ``replace``).
    """
    from facelens.models.store import sha256_file

    _check_name(name)
    if declaration.alignment != "arcface" or declaration.family != "arcface":
        raise ModelError(name, "only ArcFace-aligned recognizers (--family arcface) can be added")
    try:
        size = source.stat().st_size
        if not source.is_file():
            raise InputError(str(source.name), "not a regular file")
    except OSError as e:
        raise InputError(str(source.name), f"cannot be read ({e.strerror})") from None
    if size > MAX_MODEL_BYTES:
        raise InputError(str(source.name), f"is {size} bytes, over the {MAX_MODEL_BYTES} limit")
    digest = sha256_file(source)
    with _lock:
        doc = _read(folder)
        if name in doc["models"] and not replace:
            raise ModelError(
                name,
                f"a model named {name!r} is already registered",
                "Remove it first (facelens models remove) or choose another name.",
            )
    # in a process of its own, within memory and CPU limits (a graph may build constants
    # far larger than its file)
    data = source.read_bytes()
    final = check(data, name, declaration)
    folder.mkdir(parents=True, exist_ok=True)
    filename = f"{name}-{digest[:12]}.onnx"
    atomic_write(folder / filename, data)
    entry = {
        "file": filename,
        "sha256": digest,
        "kind": "recognizer",
        "declaration": final.to_dict(),
        "licence": licence,
        "provenance": f"registered by the user from {source.name}",
        "added_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "calibrations": {},
    }
    with _lock:
        doc = _read(folder)
        old = doc["models"].get(name)
        doc["models"][name] = entry
        _write(folder, doc)
        _cache.pop(str((folder / REGISTRY).resolve()), None)
    if old and old.get("file") != filename:
        (folder / str(old["file"])).unlink(missing_ok=True)
    return user_models(folder)[name]


def remove_model(folder: Path, name: str) -> None:
    """Forget a registered model and delete its file (templates made with it stay in the
    galleries, tagged with its checksum, until erased or re-templated)."""
    with _lock:
        doc = _read(folder)
        entry = doc["models"].pop(name, None)
        if entry is None:
            raise ModelError(name, f"no registered model {name!r}")
        _write(folder, doc)
        _cache.pop(str((folder / REGISTRY).resolve()), None)
    (folder / str(entry["file"])).unlink(missing_ok=True)


def save_calibration(folder: Path, name: str, tag: str, calibration: dict[str, Any]) -> None:
    """Store what ``facelens models calibrate`` measured for template tag ``tag``."""
    with _lock:
        doc = _read(folder)
        if name not in doc["models"]:
            raise ModelError(name, f"no registered model {name!r}")
        doc["models"][name].setdefault("calibrations", {})[tag] = calibration
        _write(folder, doc)
        _cache.pop(str((folder / REGISTRY).resolve()), None)
