"""decode: bytes / path -> RGB uint8 HxWx3 frames + frame metadata.

The only place where image files are parsed and where colour order is converted: everything
after this stage sees RGB uint8.
"""

from facelens.decode.image import DecodeConfig, ImageMeta, decode_image, load_image

__all__ = ["DecodeConfig", "ImageMeta", "decode_image", "load_image"]
