"""embed: aligned chips -> L2-normalised embeddings tagged with the model that made them.

Backends are chosen by name from ``EMBEDDERS``. Embeddings of different models never compare:
``Embeddings.check_same_model`` raises ``ModelMismatchError``.
"""

from facelens.embed.base import EmbedConfig, Embedder
from facelens.embed.embeddings import Embeddings
from facelens.embed.registry import EMBEDDERS, make_embedder

__all__ = ["EMBEDDERS", "EmbedConfig", "Embedder", "Embeddings", "make_embedder"]
