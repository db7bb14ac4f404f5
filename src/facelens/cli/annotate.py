"""Annotated copies of images: boxes and labels drawn on them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

KNOWN = (46, 204, 113)
UNKNOWN = (231, 76, 60)
NEUTRAL = (52, 152, 219)


def draw(
    image: NDArray[np.uint8],
    boxes: Sequence[Sequence[float]],
    labels: Sequence[str | None],
    colours: Sequence[tuple[int, int, int]],
    out: Path,
) -> None:
    """Save ``image`` with each box outlined and labelled to ``out`` (format from suffix)."""
    from PIL import Image, ImageDraw, ImageFont

    im = Image.fromarray(image)
    d = ImageDraw.Draw(im)
    h = im.height
    size = max(12, h // 40)
    font = ImageFont.load_default(size=size)
    width = max(2, h // 300)
    for box, label, colour in zip(boxes, labels, colours, strict=True):
        x1, y1, x2, y2 = (float(v) for v in box)
        d.rectangle([x1, y1, x2 - 1, y2 - 1], outline=colour, width=width)
        if label:
            tb = d.textbbox((0, 0), label, font=font)
            tw, th = tb[2] - tb[0], tb[3] - tb[1]
            ty = y1 - th - 6 if y1 - th - 6 >= 0 else y2
            d.rectangle([x1, ty, x1 + tw + 6, ty + th + 6], fill=colour)
            d.text((x1 + 3, ty + 3 - tb[1]), label, fill=(255, 255, 255), font=font)
    out.parent.mkdir(parents=True, exist_ok=True)
    im.save(out, quality=92) if out.suffix.lower() in (".jpg", ".jpeg") else im.save(out)
