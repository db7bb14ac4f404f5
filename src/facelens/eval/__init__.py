"""eval: measuring facelens on standard protocols (LFW pairs)."""

from facelens.eval.lfw import LfwPair, lfw_image, read_pairs

__all__ = ["LfwPair", "lfw_image", "read_pairs"]
