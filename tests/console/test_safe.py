"""safe_text: every hostile kind of server string is shown as plain data, on one line, within width."""

from __future__ import annotations

import time

import pytest
from rich.cells import cell_len
from rich.console import Console

from rdbtop.safe import ELLIPSIS, MISSING, safe_text


def rendered(text) -> str:  # type: ignore[no-untyped-def]
    console = Console(width=200, record=True, color_system=None, file=open("/dev/null", "w"))
    console.print(text, end="")
    return console.export_text()


@pytest.mark.parametrize("value", ["[/x]", "[link=http://x]a[/link]", "[bold red]boom[/]", "\\[escaped]"])
def test_markup_is_shown_as_written(value: str) -> None:
    text = safe_text(value, 60)
    assert text.plain == value and not text.spans
    assert rendered(text) == value


def test_ansi_escapes_are_removed_not_interpreted() -> None:
    value = "\x1b[31mred\x1b[0m \x1b]8;;http://x\x07link\x1b]8;;\x07 \x1b[2J\x1b[Hhome \x9b1mc1"
    assert safe_text(value, 80).plain == "red link home c1"


def test_control_characters_are_dropped_and_whitespace_flattened() -> None:
    assert safe_text("a\x00b\x07c\bd\x7fe", 20).plain == "abcde"
    assert safe_text("line1\r\nline2\tx\u2028y", 40).plain == "line1  line2 x y"


def test_invalid_utf8_becomes_replacement_characters() -> None:
    broken = b"ok \xff\xfe bytes".decode("utf-8", "surrogateescape")  # lone surrogates, as from bad UTF-8
    assert safe_text(broken, 20).plain == "ok \ufffd\ufffd bytes"
    assert safe_text(b"raw \xc3\x28", 20).plain == "raw \ufffd("
    assert safe_text("\ud800x", 5).plain == "\ufffdx"


def test_wide_and_zero_width_characters_keep_the_width() -> None:
    text = safe_text("表格数据表格数据", 7)
    assert cell_len(text.plain) <= 7 and text.plain.endswith(ELLIPSIS)
    assert safe_text("a\u200bb\u200dc\u202eevil\u2066", 20).plain == "abcevil"  # zero width and bidi controls
    assert cell_len(safe_text("e\u0301", 5).plain) == 1  # a combining accent stays on its letter


def test_emoji_fit_and_modifiers_that_terminals_disagree_on_go() -> None:
    text = safe_text("ok 👍🏽 done", 20)
    assert text.plain == "ok 👍 done"
    cut = safe_text("👍👍👍👍", 5)
    assert cell_len(cut.plain) <= 5 and cut.plain.endswith(ELLIPSIS)


def test_a_megabyte_is_cut_quickly_to_one_line() -> None:
    value = ("SELECT " + "x, " * 350_000 + "\n") * 1
    start = time.perf_counter()
    text = safe_text(value, 60)
    assert time.perf_counter() - start < 0.05
    assert cell_len(text.plain) == 60 and text.plain.endswith(ELLIPSIS) and "\n" not in text.plain


def test_multiline_keeps_newlines_and_bounds_the_size() -> None:
    text = safe_text("a\nb\x1b[1m\r", multiline=True)
    assert text.plain == "a\nb "
    big = safe_text("y" * 1_000_000, multiline=True)
    assert len(big.plain) < 70_000 and "more characters not shown" in big.plain


def test_none_and_other_types() -> None:
    assert safe_text(None, 5).plain == MISSING
    assert safe_text(42, 5).plain == "42"
    assert safe_text("abc", 0).plain == ""
