"""``facelens serve --bootstrap-key``: the first start of a store without keys makes one admin key,
shown once, that the store then knows; later starts make none."""

from __future__ import annotations

from pathlib import Path

import pytest

from facelens.cli.service_cmd import _first_key
from facelens.gallery.stores import open_store
from facelens.govern import KeyStore


def test_the_first_start_makes_one_admin_key_shown_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "site.db"
    _first_key(path, bootstrap=False)
    err = capsys.readouterr().err
    assert "no API keys yet" in err and "facelens keys create" in err
    _first_key(path, bootstrap=True)
    err = capsys.readouterr().err
    assert "first start: admin key for tenant 'default' (shown once)" in err
    secret = err.split("(shown once):")[1].split()[0]
    store = open_store(path)
    try:
        key = KeyStore(store).authenticate(secret)
        assert key is not None and key.tenant == "default" and "admin" in key.scopes
    finally:
        store.close()
    _first_key(path, bootstrap=True)
    assert capsys.readouterr().err == ""
