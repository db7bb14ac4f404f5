"""urls.redact_credentials: what is shown of a URL holding a user and password."""

from __future__ import annotations

import pytest

from facelens.urls import redact_credentials


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("rtsp://admin:s3cret@cam.local:554/s1", "rtsp://***@cam.local:554/s1"),
        ("postgresql://fl:p@ss@db:5432/fl", "postgresql://***@db:5432/fl"),  # '@' in password
        ("rtsp://viewer@cam/s1", "rtsp://***@cam/s1"),
        ("http://cam/snap?user=a@b", "http://cam/snap?user=a@b"),  # '@' after the host
        ("failed: rtsp://a:b@x/1 and rtsp://c:d@y/2", "failed: rtsp://***@x/1 and rtsp://***@y/2"),
        ("/videos/door.mp4", "/videos/door.mp4"),
        (0, "0"),
    ],
)
def test_user_and_password_are_replaced(text: object, shown: str) -> None:
    assert redact_credentials(text) == shown
