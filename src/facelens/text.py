"""Text people type: one rule for every free-text field, and when two names look alike.

Every name, consent purpose, "granted by", stop reason, key name and metadata value passes
``check_text``: NFC-normalised and stripped, and refused (``InputError``) when it holds a
character that can make text display as something else or not at all: controls (C0, C1),
format characters (category Cf: zero-width spaces and joiners, the byte-order mark, every
bidirectional control - U+061C, U+200E/F, U+202A-E, U+2066-9), the other default-ignorable
code points (variation selectors, Hangul fillers, U+034F, tag characters), surrogates, and
the line and paragraph separators (U+2028, U+2029).

Names must also be told apart (``name_key``): two identities of one gallery may not share
the confusable skeleton of Unicode TS #39 of their names, case-folded, with runs of spaces as
one space - "Оbama" (Cyrillic О) is "obama", so is "Obama". The table of confusable
characters is Unicode's (``facelens/data/confusables.txt``, written by
``scripts/make_confusables.py``). And a name never looks like an identity's id.

Example:
    >>> check_text("  Ada  ")
    'Ada'
    >>> name_key("Оbama") == name_key("obama") == name_key("OBAMA")
    True
    >>> check_text("Ada\u200b")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    facelens.errors.InputError: text: ...(U+200B at 3)...
"""

from __future__ import annotations

import functools
import re
import unicodedata
from importlib import resources

from facelens.errors import InputError

__all__ = ["MAX_NAME_CHARS", "check_name", "check_text", "name_key"]

MAX_NAME_CHARS = 200

# Default-ignorable code points that are not format characters (Unicode's
# Other_Default_Ignorable_Code_Point and Variation_Selector, PropList.txt): they render as
# nothing, so "Ada" and "Ada" + one of them look the same.
_IGNORABLE_RANGES = (
    (0x034F, 0x034F),  # combining grapheme joiner
    (0x115F, 0x1160),  # Hangul choseong / jungseong fillers
    (0x17B4, 0x17B5),  # Khmer inherent vowels
    (0x180B, 0x180F),  # Mongolian free variation selectors, vowel separator
    (0x3164, 0x3164),  # Hangul filler
    (0xFE00, 0xFE0F),  # variation selectors
    (0xFFA0, 0xFFA0),  # halfwidth Hangul filler
    (0xFFF0, 0xFFF8),  # unassigned, reserved default-ignorable
    (0xE0000, 0xE0FFF),  # tags, variation selectors supplement, reserved
)
# controls, format characters, surrogates, line and paragraph separators
_REFUSED_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
_WHAT = {
    "Cc": "a control character",
    "Cf": "an invisible format or bidirectional control character",
    "Cs": "a surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}
# identity ids: 32 lowercase hex digits (uuid4().hex)
_ID = re.compile(r"^[0-9a-f]{32}$")


def _refused(c: str) -> str | None:
    """Why ``c`` may not be in text people type, or None."""
    cat = unicodedata.category(c)
    if cat in _REFUSED_CATEGORIES:
        return _WHAT[cat]
    o = ord(c)
    if any(a <= o <= b for a, b in _IGNORABLE_RANGES):
        return "an invisible (default-ignorable) character"
    return None


def check_text(value: str, what: str = "text", max_chars: int = 500) -> str:
    """``value`` as stored: NFC, stripped, at most ``max_chars`` characters, and without any
    character that displays as nothing or as something else (see the module); an
    ``InputError`` naming ``what``, the character and where it is otherwise.

    Example:
        >>> check_text("Zoe\u0308") == "Zo\u00eb"  # NFD in, NFC out
        True
    """
    if not isinstance(value, str):
        raise InputError(what, "text expected")
    text = unicodedata.normalize("NFC", value)
    for i, c in enumerate(text):  # before stripping: a trailing U+2028 is refused, not cut
        why = _refused(c)
        if why:
            raise InputError(
                what,
                f"may not hold {why} (U+{ord(c):04X} at {i}): it makes text display as "
                "other text, or as nothing",
            )
    text = text.strip()
    if len(text) > max_chars:
        raise InputError(what, f"at most {max_chars} characters, got {len(text)}")
    return text


def check_name(name: str, what: str = "name") -> str:
    """A person's name as stored: ``check_text``, not empty, at most ``MAX_NAME_CHARS``,
    and never an identity id's form (32 hexadecimal digits), so a command given a name can
    never act on another person by their id.

    Example:
        >>> check_name("  Ada Lovelace ")
        'Ada Lovelace'
        >>> check_name("Ada\x1b[31m")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        facelens.errors.InputError: name: may not hold a control character (U+001B at 3)...
    """
    name = check_text(name, what, MAX_NAME_CHARS)
    if not name:
        raise InputError(what, "an identity needs a name")
    if _ID.match(name.lower()):
        raise InputError(what, "a name may not be 32 hexadecimal digits: that is an id")
    return name


@functools.cache
def _prototypes() -> dict[int, str]:
    table: dict[int, str] = {}
    text = resources.files("facelens").joinpath("data/confusables.txt").read_text("utf-8")
    for line in text.splitlines():
        if line and not line.startswith("#"):
            src, dst = line.split("\t")
            table[int(src, 16)] = "".join(chr(int(h, 16)) for h in dst.split())
    return table


def _skeleton(text: str) -> str:
    """UTS #39 skeleton: NFD, each character replaced by its prototype, NFD again."""
    return unicodedata.normalize("NFD", unicodedata.normalize("NFD", text).translate(_prototypes()))


def name_key(name: str) -> str:
    """What two names must not share in one gallery: the UTS #39 skeleton of the name,
    case-folded and taken again (so "AI", "Al" and "A1" are one name, and so are "Оbama"
    and "obama"), with every run of white space one space.

    Example:
        >>> name_key("Ada  Lovelace") == name_key("ada lovelace")
        True
        >>> name_key("Ada") == name_key("Adam")
        False
    """
    key = _skeleton(_skeleton(unicodedata.normalize("NFC", name)).casefold())
    return " ".join(key.split())
