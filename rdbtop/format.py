"""Short human forms of durations, ages, sizes and ratios, each fitting a narrow column."""

from __future__ import annotations

from .model import MISSING_TEXT, BlockingGroup, Snapshot


def duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING_TEXT
    s = max(0.0, seconds)
    if s < 10:
        return f"{s:.1f}s"
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    if s < 86400:
        return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"
    return f"{int(s // 86400)}d{int(s % 86400 // 3600):02d}h"


def age(timestamp: float | None, now: float) -> str:
    return MISSING_TEXT if timestamp is None else duration(now - timestamp)


def size(n: int | None) -> str:
    if n is None:
        return MISSING_TEXT
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return MISSING_TEXT


def percent(ratio: float | None) -> str:
    return MISSING_TEXT if ratio is None else f"{ratio * 100:.1f}%"


def number(value: float | None, digits: int = 1) -> str:
    return MISSING_TEXT if value is None else f"{value:.{digits}f}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def tree_summary(groups: list[BlockingGroup]) -> str:
    """'1 root blocker, 1 deadlock cycle, 7 waiting': every waiting session counted once."""
    roots = sum(1 for g in groups if not g.cycle)
    cycles = len(groups) - roots
    parts = ([plural(roots, "root blocker")] if roots or not cycles else []) + \
        ([plural(cycles, "deadlock cycle")] if cycles else [])
    return f"{', '.join(parts)}, {sum(g.waiting for g in groups)} waiting"


def victim_note(snap: Snapshot, short: bool = False) -> str:
    """When the server will break a cycle: by aborting one member at its next deadlock check."""
    every = snap.deadlock_check_seconds
    if short:
        return "victim pending" if every is None else f"victim ≤{every:g} s"
    return "the server chooses a victim at its next deadlock check" if every is None else \
        f"victim chosen within {every:g} s"


def cpu_time(ms: float | None) -> str:
    """CPU time in a 6-wide column: 0.4ms, 85ms, 1.2s, then as durations."""
    if ms is None:
        return MISSING_TEXT
    if ms < 10:
        return f"{max(0.0, ms):.1f}ms"
    if ms < 1000:
        return f"{ms:.0f}ms"
    return duration(ms / 1000)


def count(n: int | None) -> str:
    """A count in a 5-wide column: 999, 1.2k, 12k, 1.2M, 12M, 1.2G."""
    if n is None:
        return MISSING_TEXT
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            value = n / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(n)
