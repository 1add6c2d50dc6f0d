"""Themes from TOML files: the ones shipped in rdbtop/themes/, then the user's own (same names win).

A theme file holds Textual Theme fields; `[variables]` may set the console's own colours
(`rdb-waiting`, `rdb-idle-tx`, `rdb-critical`, `rdb-ok`, `rdb-muted`, `rdb-banner-bg`), which
default to the values below. With NO_COLOR set, the console uses Textual's ansi-dark theme, which
emits no colour codes at all under NO_COLOR, and marks states with bold and reverse instead.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from textual.theme import Theme

SHIPPED = Path(__file__).with_name("themes")
DEFAULT_THEME = "rdb-dark"
MONOCHROME_THEME = "ansi-dark"
VARIABLE_DEFAULTS = {
    "rdb-waiting": "#F0A030", "rdb-idle-tx": "#D080F0", "rdb-critical": "#FF5F5F", "rdb-ok": "#5FC07A",
    "rdb-muted": "#7A8696", "rdb-banner-bg": "#8B1A1A",
}
_ALLOWED = {f.name for f in fields(Theme)}


class ThemeError(Exception):
    pass


def load_theme(path: Path) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeError(f"{path}: {exc}") from None
    unknown = set(data) - _ALLOWED
    if unknown:
        raise ThemeError(f"{path}: unknown keys {', '.join(sorted(unknown))}")
    try:
        theme = Theme(**data)
        theme.to_color_system().generate()  # a bad colour fails here, at start, not at first use
    except Exception as exc:  # Theme raises several kinds (TypeError, ColorParseError)
        raise ThemeError(f"{path}: {exc}") from None
    return theme


def load_themes(*directories: Path) -> tuple[list[Theme], list[str]]:
    """Themes from each directory in turn (later ones replace same-named earlier ones), and problems."""
    found: dict[str, Theme] = {}
    problems: list[str] = []
    for directory in directories:
        for path in sorted(directory.glob("*.toml")) if directory.is_dir() else ():
            try:
                theme = load_theme(path)
            except ThemeError as exc:
                problems.append(str(exc))
                continue
            found[theme.name] = theme
    return list(found.values()), problems


@dataclass(frozen=True)
class Palette:
    """Rich styles for cells, which CSS cannot reach row by row."""

    waiting: str
    idle_tx: str
    critical: str
    ok: str
    muted: str

    @classmethod
    def of(cls, variables: dict[str, str], monochrome: bool) -> Palette:
        if monochrome:
            return cls(waiting="bold", idle_tx="underline", critical="bold reverse", ok="", muted="dim")
        v = {**VARIABLE_DEFAULTS, **variables}
        return cls(waiting=v["rdb-waiting"], idle_tx=v["rdb-idle-tx"], critical=f"bold {v['rdb-critical']}",
                   ok=v["rdb-ok"], muted=v["rdb-muted"])
