"""Readable tables and JSON for the CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

import click


def emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table; control characters in cells (a name holding a terminal
    escape sequence) are shown escaped, never sent to the terminal."""
    cells = [[("" if v is None else safe(str(v))) for v in r] for r in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
    line = "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
    out = [line.rstrip(), "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(out)


def safe(text: str) -> str:
    """``text`` with control characters (terminal escape sequences among them) shown as
    escapes rather than sent to the terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def echo(text: str, err: bool = False, nl: bool = True) -> None:
    """``click.echo`` with every line passed through ``safe``: names and other stored text
    reach the terminal as text, never as escape sequences."""
    click.echo("\n".join(safe(line) for line in str(text).split("\n")), err=err, nl=nl)


def warn(msg: str) -> None:
    click.echo(f"facelens: {safe(msg)}", err=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def fmt_box(box: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in box) + "]"
