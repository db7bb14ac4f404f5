"""The recognizers by name: ``make_embedder`` builds the one an ``EmbedConfig`` names (dlib's
ResNet on ONNX Runtime or on dlib, any declared ONNX recognizer), each backend imported only
when asked for; no backend imports this module.
"""

from __future__ import annotations

from collections.abc import Callable

from facelens.embed.base import EmbedConfig, Embedder, model_names
from facelens.errors import ModelError
from facelens.models import ModelStore
from facelens.runtime import RuntimeConfig

__all__ = ["EMBEDDERS", "make_embedder"]


EmbedderFactory = Callable[[EmbedConfig, ModelStore, RuntimeConfig, str], Embedder]


def _dlib(config: EmbedConfig, models: ModelStore, runtime: RuntimeConfig, model: str) -> Embedder:
    from facelens.embed.dlib_resnet import MODEL, DlibResnetEmbedder

    if model != MODEL:
        raise ModelError(model, f"{model!r} runs on ONNX Runtime only (--backend onnx)")
    return DlibResnetEmbedder(config, models)


def _onnx(config: EmbedConfig, models: ModelStore, runtime: RuntimeConfig, model: str) -> Embedder:
    from facelens.embed.onnx_resnet import OnnxResnetEmbedder

    return OnnxResnetEmbedder(config, models, runtime, model)


# Backends of dlib's ResNet (``EmbedConfig.backend``); every other recognizer runs on the
# generic ONNX recognizer from its declaration.
EMBEDDERS: dict[str, EmbedderFactory] = {"onnx": _onnx, "dlib": _dlib}


def make_embedder(
    config: EmbedConfig, models: ModelStore | None = None, runtime: RuntimeConfig | None = None
) -> Embedder:
    """The embedder of ``config.model``, one recognizer (not loaded yet; a fusion is made
    by ``facelens.embed.fusion.make_fusion``).

    Example:
        >>> make_embedder(EmbedConfig(model="dlib", backend="dlib", augment="none")).model
        'dlib_resnet_v1'
    """
    models = models or ModelStore()
    runtime = runtime or RuntimeConfig()
    names = model_names(config.model)
    if len(names) != 1:
        raise ModelError(config.model, f"{config.model!r} is a fusion; use make_fusion")
    spec = models.spec(names[0])
    if spec.kind != "recognizer" or spec.recognizer is None:
        raise ModelError(spec.name, f"model {spec.name!r} is a {spec.kind}, not a recognizer")
    embedder: Embedder
    if spec.recognizer.family == "dlib":
        try:
            factory = EMBEDDERS[config.backend]
        except KeyError:
            raise ModelError(
                config.backend,
                f"unknown embedder {config.backend!r}; "
                f"known embedders: {', '.join(sorted(EMBEDDERS))}.",
            ) from None
        embedder = factory(config, models, runtime, spec.name)
    else:
        from facelens.embed.onnx_generic import OnnxRecognizer

        embedder = OnnxRecognizer(spec, config, models, runtime)
    if config.augment == "none":
        return embedder
    from facelens.embed.augment import AugmentedEmbedder

    return AugmentedEmbedder(embedder, config.augment)
