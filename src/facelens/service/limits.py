"""What one request may take, decided before the work starts: memory for its decoded images
(from their headers, before a pixel is decoded), shared across the worker's requests so a
few large photos cannot exhaust it, and how long a request may wait for its share."""

import contextlib
import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from facelens.errors import ImageTooLargeError
from facelens.service.errors import HttpError

__all__ = ["BYTES_PER_PIXEL", "MemoryBudget", "image_cost", "release_freed_memory"]

# Measured peak growth of decode + detect + align + embed per image pixel: a 6000x6000 JPEG
# grew the process by 400 MB in one run and 632 MB in another (11-17.5 B/px: Pillow's
# buffer, the RGB array, the EXIF-upright copy, detection tiles, a new malloc arena for the
# thread); a margin on top.
BYTES_PER_PIXEL = 20
FIXED_BYTES = 64 * 1024 * 1024


def image_cost(width: int, height: int) -> int:
    """Bytes a request is charged for working on one ``width`` x ``height`` image.

    Example:
        >>> image_cost(1000, 1000) // 2**20
        83
    """
    return FIXED_BYTES + BYTES_PER_PIXEL * width * height


class MemoryBudget:
    """A worker's memory for image work: each request reserves its images' cost for as long
    as it works on them; one that cannot get it within ``wait_s`` is told to come back (503
    with ``Retry-After``) instead of queueing without bound."""

    def __init__(self, total: int, per_request: int, wait_s: float) -> None:
        self.total, self.per_request, self.wait_s = total, per_request, wait_s
        self.used = 0
        self._cond = threading.Condition()

    @contextmanager
    def reserve(self, nbytes: int) -> Iterator[None]:
        if nbytes > self.per_request:
            raise ImageTooLargeError(
                "request",
                f"its images would take about {nbytes // 2**20} MiB to work on, over the "
                f"{self.per_request // 2**20} MiB a request may use; send smaller images",
                actual=nbytes,
                limit=self.per_request,
            )
        with self._cond:
            if not self._cond.wait_for(lambda: self.used + nbytes <= self.total, self.wait_s):
                raise HttpError(
                    503,
                    "busy",
                    "the service is working on other large images; try again shortly",
                    headers={"Retry-After": "2"},
                )
            self.used += nbytes
        try:
            yield
        finally:
            with self._cond:
                self.used -= nbytes
                self._cond.notify_all()


@functools.cache
def _libc() -> Any:
    """glibc, looked up once (``ctypes.util.find_library`` runs ``ldconfig``: far too slow
    for every request)."""
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


def release_freed_memory() -> None:
    """Hand memory freed by a large request back to the system (glibc keeps freed heap
    pages otherwise: a 36 MP photo left ~260 MB resident after its answer)."""
    libc = _libc()
    if libc is not None:
        with contextlib.suppress(AttributeError):  # a libc without malloc_trim
            libc.malloc_trim(0)
