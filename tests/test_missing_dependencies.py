"""An optional package that is not installed is one error everywhere: ``MissingDependencyError``
naming the package and how to install it, exit code 8 from the CLI (503 from the service), never
a model, input or gallery error. The absence is made real for the test: ``sys.modules[name] =
None`` makes ``import name`` fail as it does where the package was never installed."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from facelens.cli.main import EXIT_MISSING, main
from facelens.errors import MissingDependencyError


def _mqtt() -> Any:
    from facelens.events.sinks import MqttSink

    return MqttSink("127.0.0.1", 1883, "door")


def _postgres() -> Any:
    from facelens.gallery.postgres import PostgresStore

    return PostgresStore("postgresql://nobody@127.0.0.1:1/none")


def _ray() -> Any:
    from facelens.archive.distributed import ray_runner

    return ray_runner("local", "dlib")


def _plots(tmp: Path) -> Any:
    from facelens.eval.plots import plot_roc_det

    same = np.array([True, False])
    return plot_roc_det({"x": (np.array([0.9, 0.1]), same)}, tmp)


def _flir(data: Path) -> Any:
    from facelens.thermal.radiometric import decode_flir

    src = next((data / "thermal" / "flir_radiometric").glob("09 - *.jpg"))
    return decode_flir(src.read_bytes(), src.name)


CASES: dict[str, tuple[str, Callable[[Path, Path], Any]]] = {
    "paho-mqtt": ("paho", lambda tmp, data: _mqtt()),
    "psycopg": ("psycopg", lambda tmp, data: _postgres()),
    "ray": ("ray", lambda tmp, data: _ray()),
    "matplotlib": ("matplotlib", lambda tmp, data: _plots(tmp)),
    "flyr": ("flyr", lambda tmp, data: _flir(data)),
    "onnxruntime": ("onnxruntime", lambda tmp, data: __import__("facelens.runtime").runtime._ort()),
    "dlib": ("dlib", lambda tmp, data: __import__("facelens._dlib")._dlib.import_dlib()),
}


@pytest.mark.parametrize("package", sorted(CASES))
def test_a_missing_package_is_one_error_naming_it(
    package: str, tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module, call = CASES[package]
    monkeypatch.setitem(__import__("sys").modules, module, None)
    with pytest.raises(MissingDependencyError) as e:
        call(tmp_path, data)
    assert e.value.what == package and "pip install" in e.value.hint


def test_the_cli_exits_8_with_the_install_hint(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "flyr", None)
    src = next((data / "thermal" / "flir_radiometric").glob("09 - *.jpg"))
    out = tmp_path / "c.npy"
    assert main(["thermal", "decode", str(src), "--out", str(out)]) == EXIT_MISSING == 8
    assert not out.exists()
    err = capsys.readouterr().err
    assert "flyr is not installed" in err and "pip install 'facelens[thermal]'" in err
