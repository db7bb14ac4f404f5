"""Credentials never leave the process: ``user:password@`` in a URL is shown as ``***@``.

Camera and database URLs carry passwords (``rtsp://admin:secret@cam/stream``,
``postgresql://fl:secret@db/fl``). Wherever such a URL is shown - stream lists, events'
``source``, error messages, logs, the ``serve`` banner - ``redact_credentials`` is applied
first; the real URL is used only to connect.

Example:
    >>> redact_credentials("rtsp://admin:s3cret@10.0.0.5:554/stream1")
    'rtsp://***@10.0.0.5:554/stream1'
    >>> redact_credentials("cannot open postgresql://fl:pw@db/fl: timeout")
    'cannot open postgresql://***@db/fl: timeout'
    >>> redact_credentials("clip.mp4")
    'clip.mp4'
"""

from __future__ import annotations

import re

__all__ = ["redact_credentials"]

# scheme://userinfo@ - userinfo has no '/', '?', '#' or whitespace (RFC 3986); the last '@'
# before the host ends it, so a password holding '@' is covered too
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)[^/?#\s]*@")


def redact_credentials(text: object) -> str:
    """``text`` (any object, as ``str``) with the user and password of every URL in it
    replaced by ``***``."""
    return _USERINFO.sub(r"\g<scheme>***@", str(text))
