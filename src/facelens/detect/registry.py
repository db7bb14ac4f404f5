"""The detectors facelens knows, by name: ``make_detector`` builds the one a ``DetectConfig``
names. Each backend is imported only when it is asked for (dlib's are heavy), and no backend
imports this module.
"""

from __future__ import annotations

from collections.abc import Callable

from facelens.detect.base import DetectConfig, Detector
from facelens.errors import ModelError
from facelens.models import ModelStore
from facelens.runtime import RuntimeConfig

__all__ = ["DETECTORS", "make_detector"]


DetectorFactory = Callable[[DetectConfig, ModelStore, RuntimeConfig], Detector]


def _hog(config: DetectConfig, models: ModelStore, runtime: RuntimeConfig) -> Detector:
    from facelens.detect.dlib_hog import DlibHogDetector

    return DlibHogDetector(config)


def _cnn(config: DetectConfig, models: ModelStore, runtime: RuntimeConfig) -> Detector:
    from facelens.detect.dlib_cnn import DlibCnnDetector

    return DlibCnnDetector(config, models)


def _onnx_mmod(config: DetectConfig, models: ModelStore, runtime: RuntimeConfig) -> Detector:
    from facelens.detect.onnx_mmod import OnnxMmodDetector

    return OnnxMmodDetector(config, models, runtime)


def _yunet(config: DetectConfig, models: ModelStore, runtime: RuntimeConfig) -> Detector:
    from facelens.detect.yunet import YunetDetector

    return YunetDetector(config, models, runtime)


def _centerface(config: DetectConfig, models: ModelStore, runtime: RuntimeConfig) -> Detector:
    from facelens.detect.centerface import CenterFaceDetector

    return CenterFaceDetector(config, models, runtime)


DETECTORS: dict[str, DetectorFactory] = {
    "yunet": _yunet,
    "centerface": _centerface,
    "onnx_mmod": _onnx_mmod,
    "dlib_hog": _hog,
    "dlib_cnn": _cnn,
}


def make_detector(
    config: DetectConfig, models: ModelStore | None = None, runtime: RuntimeConfig | None = None
) -> Detector:
    """The detector named by ``config.backend`` (not loaded yet).

    Example:
        >>> make_detector(DetectConfig(backend="dlib_hog")).name
        'dlib_hog'
    """
    try:
        factory = DETECTORS[config.backend]
    except KeyError:
        raise ModelError(
            config.backend,
            f"unknown detector {config.backend!r}; "
            f"known detectors: {', '.join(sorted(DETECTORS))}.",
        ) from None
    return factory(config, models or ModelStore(), runtime or RuntimeConfig())
