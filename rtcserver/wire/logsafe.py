"""Client-supplied text made safe for a `key=value` log line.

Anything a client chose (an X-Forwarded-For entry, an Origin, a token's `sub`, a
name) could otherwise end a log line, start a forged one, or add a `key=` of its
own. `clean` writes every control, format (bidi, zero-width) and line-breaking character,
and `"` and `\\`, as an escape, and quotes a value holding a space or `=` (logfmt
style), so a log line always says exactly what was received and no more.
"""

from __future__ import annotations

from typing import Final

# Long enough for any honest value (an Origin, a name, an IPv6 address with a port).
MAX_LOGGED: Final = 200
_ESCAPED: Final = frozenset('"\\')


def clean(value: object, limit: int = MAX_LOGGED) -> str:
    """`value` as one log field: unprintable characters and quotes become `\\xNN` /
    `\\uNNNN` escapes; a value with a space or `=` is quoted; longer than `limit`: cut
    and marked `...`."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    out: list[str] = []
    for char in text[:limit]:
        if (char.isprintable() and char not in _ESCAPED) or char == " ":
            out.append(char)
        elif ord(char) < 0x100:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) < 0x10000:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    if cut:
        out.append("...")
    result = "".join(out)
    if not result or " " in result or "=" in result:
        return f'"{result}"'
    return result
