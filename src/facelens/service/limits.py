"""What one request may take, decided before the work starts: memory for its decoded images
(from their headers and structure, before a pixel is decoded), shared across the worker's
requests so a few large photos cannot exhaust it, and how long a request may wait for its
share."""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from facelens.decode.cost import DecodeCost
from facelens.errors import ImageTooLargeError
from facelens.service.errors import HttpError

__all__ = ["BYTES_PER_PIXEL", "MemoryBudget", "image_cost"]

# Measured peak growth of decode + detect + align + embed per image pixel: a 6000x6000 JPEG
# grew the process by 400 MB in one run and 632 MB in another (11-17.5 B/px: Pillow's
# buffer, the RGB array, the EXIF-upright copy, detection tiles, a new malloc arena for the
# thread); a margin on top.
BYTES_PER_PIXEL = 20
FIXED_BYTES = 64 * 1024 * 1024


def image_cost(cost: DecodeCost) -> int:
    """Bytes a request is charged for one image: the more of its two phases - decoding it
    (in a decode process: ``DecodeCost.peak_bytes``, which that process may not exceed,
    and the RGB copy the worker receives) and working on it in the worker.

    Example:
        >>> from facelens.decode.cost import DecodeCost
        >>> image_cost(DecodeCost(1000, 1000, pixel_bytes=4, decoder_bytes=0)) // 2**20
        108
        >>> tiled = DecodeCost(1000, 1000, pixel_bytes=4, decoder_bytes=2**30)
        >>> image_cost(tiled) // 2**20  # a decoder's own buffer is charged
        1132
    """
    decoding = cost.peak_bytes + 3 * cost.pixels
    working = FIXED_BYTES + BYTES_PER_PIXEL * cost.pixels
    return max(decoding, working)


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
