"""Server strings made safe to show: the one way any value from the server reaches the screen.

Whatever the server sends (SQL, user and application names, alert text) is data. It may hold
Rich markup, ANSI escape sequences, control characters, lone surrogates from invalid UTF-8, zero
width or bidi-control characters, or be a megabyte long. `safe_text` returns a `rich.text.Text`
(never parsed as markup) of plain printable characters, cut with an ellipsis to a cell width.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from rich.cells import cell_len
from rich.text import Text

MISSING = "–"
ELLIPSIS = "…"
# a value is cut before cleaning, so a megabyte costs no more than a line
_SCAN_CHARS_PER_CELL = 8
_SCAN_MIN = 512
MULTILINE_MAX_CHARS = 64 * 1024

_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"            # CSI: colours, cursor moves, erase
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC: titles, hyperlinks, clipboard
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"       # DCS, SOS, PM, APC strings
    r"|\x1b[@-Z\\-_]"                       # two-byte escapes
    r"|\x9b[0-?]*[ -/]*[@-~]"               # 8-bit CSI
)
_WHITESPACE = set("\t\n\r\v\f\x85\u2028\u2029")
# Characters whose width terminals disagree on with Rich, so they could shift a row's columns:
# emoji skin-tone modifiers and variation selectors (zero-width joiners and bidi controls are Cf).
_DROP = {chr(c) for c in range(0x1F3FB, 0x1F400)} | {chr(c) for c in range(0xFE00, 0xFE10)}


def _clean_char(ch: str, multiline: bool) -> str:
    if ch in _WHITESPACE:
        return "\n" if multiline and ch == "\n" else " "
    if ch in _DROP:
        return ""
    category = unicodedata.category(ch)
    if category in ("Cc", "Cf"):
        return ""
    if category in ("Cs", "Cn"):  # a lone surrogate (invalid UTF-8), or a code point too new to measure
        return "\ufffd"
    return ch


def clean(value: Any, limit: int | None = None, *, multiline: bool = False) -> str:
    """The printable text of `value`, at most about `limit` characters scanned (None: no cut)."""
    if value is None:
        return MISSING
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    else:
        text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit]
    text = _ESCAPES.sub("", text)
    if text.isascii() and text.isprintable():
        return text
    return "".join(_clean_char(ch, multiline) for ch in text)


def safe_text(value: Any, width: int | None = None, *, style: str = "", multiline: bool = False) -> Text:
    """`value` as a Text of one line (or several, for detail views), cut to `width` cells with an ellipsis.

    None becomes "–". Markup is never interpreted: `Text` holds the characters as they are.
    """
    if multiline:
        raw = value if value is None or isinstance(value, (str, bytes)) else str(value)
        size = len(raw) if raw is not None else 0
        text = clean(raw, MULTILINE_MAX_CHARS, multiline=True)
        if size > MULTILINE_MAX_CHARS:
            text += f"\n{ELLIPSIS} ({size - MULTILINE_MAX_CHARS:,} more characters not shown)"
        return Text(text, style=style, no_wrap=False)
    if width is not None and width <= 0:
        return Text("", style=style, no_wrap=True, end="")
    scan = None if width is None else max(_SCAN_MIN, width * _SCAN_CHARS_PER_CELL)
    text = clean(value, scan)
    out = Text(text, style=style, no_wrap=True, overflow="ellipsis", end="")
    if width is not None and cell_len(text) > width:
        out.truncate(width, overflow="ellipsis")
        if not out.plain.endswith(ELLIPSIS):
            # a wide character at the cut leaves no room for the ellipsis: drop one more cell
            out.truncate(width - 1)
            out.append(ELLIPSIS)
    return out
