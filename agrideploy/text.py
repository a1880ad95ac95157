"""Text from untrusted files made safe to print: no terminal escapes, no line breaks."""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, and the bidirectional overrides that can reorder what a terminal shows
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """`text` with every control character written as a visible escape (\\n, \\x1b, \\u202e)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), str(text))


def printable_lines(text: object) -> str:
    """Like printable, but keeps the line breaks of a multi-line description."""
    return "\n".join(printable(line) for line in str(text).split("\n"))
