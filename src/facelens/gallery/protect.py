"""Protected templates (ISO/IEC 24745): encryption at rest, and a secret transform per gallery.

* **Confidentiality.** With a ``TemplateKey`` every template, every kept chip, each gallery's
  transform secret and each saved approximate index is sealed with AES-256-GCM (a fresh
  96-bit nonce per value; the associated data names what the value is, so a chip cannot be
  passed off as a template or one gallery's secret as another's). Whoever copies the
  database without the key file holds ciphertext.
* **Unlinkability and renewability.** Each gallery has a random 256-bit secret from which an
  orthonormal matrix per template size is drawn (Haar-random, by QR of a Gaussian matrix); the
  gallery stores ``R @ template`` and searches with ``R @ probe``. Inner products within a
  gallery are unchanged (so are its decisions and its approximate index), while two galleries'
  templates of one person are unrelated vectors. Renewing the secret (``facelens govern
  rotate-key``) re-transforms a gallery without its people re-enrolling.

The key file holds 64 hexadecimal digits (``TemplateKey.create_file(path)`` makes one, readable
by its owner only; ``facelens govern new-key PATH`` from the command line).

Example:
    >>> key = TemplateKey(bytes(range(32)))
    >>> key.open(key.seal(b"template bytes", b"template"), b"template")
    b'template bytes'
    >>> r = transform(b"s" * 32, 4)
    >>> bool(np.allclose(r @ r.T, np.eye(4), atol=1e-6))
    True
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from facelens.errors import GalleryKeyError

__all__ = ["MAGIC", "OVERHEAD", "TemplateKey", "is_sealed", "new_secret", "transform"]

MAGIC = b"FLE1"
_NONCE = 12
OVERHEAD = len(MAGIC) + _NONCE + 16  # what sealing adds to a value


def is_sealed(value: bytes) -> bool:
    return value[: len(MAGIC)] == MAGIC


class TemplateKey:
    """A 256-bit key that seals a store's templates, chips and gallery secrets."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise GalleryKeyError("a template key is 32 bytes (64 hexadecimal digits)")
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        # names the key in messages and in the store, without telling anything of it
        self.key_id = hashlib.sha256(b"facelens key id\0" + key).hexdigest()[:16]

    @classmethod
    def from_file(cls, path: str | Path) -> TemplateKey:
        """Read a key file (64 hexadecimal digits); a clear ``GalleryKeyError`` otherwise
        (never the file's content in the message)."""
        p = Path(path)
        try:
            if not p.is_file():
                raise GalleryKeyError(f"the key file {p.name!r} does not exist or is not a file")
            text = p.read_text(encoding="ascii", errors="strict")[:200].strip()
            return cls(bytes.fromhex(text))
        except (ValueError, UnicodeDecodeError):
            raise GalleryKeyError(
                f"the key file {p.name!r} does not hold a key (64 hexadecimal digits)"
            ) from None
        except OSError as e:
            raise GalleryKeyError(f"cannot read the key file {p.name!r}: {e.strerror}") from None

    @staticmethod
    def create_file(path: str | Path) -> TemplateKey:
        """Make a new random key in a new file, readable and writable by its owner only
        (an existing file is never overwritten)."""
        raw = secrets.token_bytes(32)
        p = Path(path)
        try:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise GalleryKeyError(
                f"{p.name!r} exists already; a key file is never overwritten"
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(raw.hex() + "\n")
        return TemplateKey(raw)

    def seal(self, data: bytes, purpose: bytes) -> bytes:
        """``MAGIC + nonce + AES-256-GCM(data)``, bound to ``purpose``."""
        nonce = secrets.token_bytes(_NONCE)
        return MAGIC + nonce + self._aead.encrypt(nonce, data, purpose)

    def open(self, value: bytes, purpose: bytes) -> bytes:
        """The data sealed in ``value`` for ``purpose``; ``GalleryKeyError`` when this key did
        not seal it, it was sealed for something else, or it was altered."""
        from cryptography.exceptions import InvalidTag

        value = bytes(value)
        if not is_sealed(value) or len(value) < OVERHEAD:
            raise GalleryKeyError("a protected value is not sealed: the store was altered")
        nonce = value[len(MAGIC) : len(MAGIC) + _NONCE]
        try:
            return self._aead.decrypt(nonce, value[len(MAGIC) + _NONCE :], purpose)
        except InvalidTag:
            raise GalleryKeyError(
                "a protected value does not open with this key (another key sealed it, or it "
                "was altered)"
            ) from None


def new_secret() -> bytes:
    """A gallery's transform secret."""
    return secrets.token_bytes(32)


def transform(secret: bytes, dim: int) -> NDArray[np.float32]:
    """The gallery's orthonormal ``dim`` x ``dim`` matrix for its secret (Haar-random: the QR
    factor of a Gaussian matrix, its signs fixed by the diagonal of R)."""
    seed = int.from_bytes(hashlib.sha256(secret + dim.to_bytes(4, "little")).digest(), "little")
    g = np.random.default_rng(seed).standard_normal((dim, dim))
    q, r = np.linalg.qr(g)
    q *= np.sign(np.diag(r))
    return np.ascontiguousarray(q, np.float32)
