"""Names that look alike (Unicode TR39): skeletons and the one-script rule. Pure.

Two names are confusable when their *skeletons* are equal (UTS #39, section 4):
decompose (NFD), replace each character by the prototype it can be mistaken for
(`confusables.txt`), decompose again. `alice` and `аlice` (Cyrillic а) share the
skeleton `alice`; so do `rn` and `m`. A name is *mixed-script* when its letters come
from more than one script, Common and Inherited (digits, punctuation, combining
marks) aside, except for the combinations a language writes together (UTS #39's
Highly Restrictive level: Latin with Han and Hiragana/Katakana, Hangul or Bopomofo).

The Unicode data (confusables.txt and Scripts.txt) comes from the
`confusable-homoglyphs` package, which keeps them as a symmetric table: each entry
lists what a character can be confused with. The prototype direction is recovered
below: in confusables.txt a source character maps to exactly one prototype, and
prototypes are never sources.
"""

from __future__ import annotations

import unicodedata
from typing import Final

from confusable_homoglyphs import categories, confusables  # type: ignore[import-untyped]

# The package's generator kept the left-to-right marks the file wraps RTL text in.
_DIRECTION_MARKS: Final = "\u200e\u200f"
_IGNORED_SCRIPTS: Final = frozenset({"COMMON", "INHERITED"})
# Scripts one language writes together (UTS #39 5.2, Highly Restrictive).
_SCRIPT_FAMILIES: Final = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
)


def _prototypes() -> dict[str, str]:
    """Each confusable character -> the string it is drawn to in a skeleton."""
    table: dict[str, list[str]] = {}
    data: dict[str, list[dict[str, str]]] = confusables.confusables_data
    for key, entries in data.items():
        targets = table.setdefault(key.strip(_DIRECTION_MARKS), [])
        targets.extend(entry["c"].strip(_DIRECTION_MARKS) for entry in entries)
    prototype: dict[str, str] = {}
    for char, others in table.items():
        if len(char) != 1 or len(others) != 1:
            continue  # a sequence, or a prototype (several sources map to it)
        (other,) = others
        if len(other) != 1 or len(table.get(other, ())) > 1:
            prototype[char] = other  # a source: its prototype is `other`
        else:
            # A prototype with exactly one source: the table cannot say which of the
            # two is which, so both get the same representative.
            prototype[char] = min(char, other)
    return prototype


_PROTOTYPE: Final = _prototypes()


def skeleton(name: str) -> str:
    """The UTS #39 skeleton: equal skeletons mean the names look alike."""
    decomposed = unicodedata.normalize("NFD", name)
    mapped = "".join(_PROTOTYPE.get(char, char) for char in decomposed)
    return unicodedata.normalize("NFD", mapped)


def scripts(name: str) -> frozenset[str]:
    """The scripts of `name`'s characters, Common and Inherited left out."""
    return frozenset(categories.unique_aliases(name)) - _IGNORED_SCRIPTS


def is_mixed_script(name: str) -> bool:
    used = scripts(name)
    if len(used) <= 1:
        return False
    return not any(used <= family for family in _SCRIPT_FAMILIES)
