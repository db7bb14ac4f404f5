"""ROC and DET curves as PNG files (needs matplotlib: ``pip install facelens[eval]``)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from statistics import NormalDist

import numpy as np
from numpy.typing import NDArray

from facelens.errors import MissingDependencyError
from facelens.eval.metrics import det_curve, roc_curve

__all__ = ["plot_roc_det"]


def plot_roc_det(
    systems: Mapping[str, tuple[NDArray[np.float64], NDArray[np.bool_]]], out_dir: Path
) -> dict[str, str]:
    """Write ``roc.png`` (TAR against FAR, log FAR axis) and ``det.png`` (FNMR against FMR on
    normal-deviate axes) with one curve per system; returns the file paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependencyError(
            "matplotlib", "ROC and DET plots", "pip install 'facelens[eval]'"
        ) from None
    ppf = np.vectorize(NormalDist().inv_cdf)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for name, (scores, same) in systems.items():
        far, tar, _ = roc_curve(scores, same)
        ax.plot(np.maximum(far, 1e-5), tar, label=name)
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1)
    ax.set_xlabel("false accept rate (FAR, log scale)")
    ax.set_ylabel("true accept rate (TAR)")
    ax.set_title("LFW View 2 ROC")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right")
    roc = out_dir / "roc.png"
    fig.tight_layout()
    fig.savefig(roc)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    ticks = np.array([0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    for name, (scores, same) in systems.items():
        fmr, fnmr = det_curve(scores, same)
        keep = (fmr > 0) & (fnmr > 0)
        ax.plot(ppf(fmr[keep]), ppf(fnmr[keep]), label=name)
    ax.set_xticks(ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set_yticks(ppf(ticks), [f"{t:g}" for t in ticks])
    ax.set_xlim(ppf(0.0005), ppf(0.5))
    ax.set_ylim(ppf(0.0005), ppf(0.5))
    ax.set_xlabel("false match rate (FMR)")
    ax.set_ylabel("false non-match rate (FNMR)")
    ax.set_title("LFW View 2 DET")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper right")
    det = out_dir / "det.png"
    fig.tight_layout()
    fig.savefig(det)
    plt.close(fig)
    return {"roc": str(roc), "det": str(det)}
