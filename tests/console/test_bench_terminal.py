"""bench/terminal.py in its short mode: the real console in a pseudo-terminal still gives its table."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("pyte")

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_terminal_bench_runs_and_reports_every_figure() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "terminal.py"), "--short"], capture_output=True,
                         text=True, timeout=280, cwd=ROOT, check=True).stdout
    rows = {m.group(1): m for m in re.finditer(
        r"^rdbtop +20 +80x24 (sessions|ash) +([\d.]+) +(\d+) +([\d.]+) .*$", out, re.MULTILINE)}
    assert set(rows) == {"sessions", "ash"}, out
    first = re.search(r"^rdbtop +20 +80x24 sessions .*? ([\d.]+) s \(([\d.]+)\) +(\d+) MiB", out, re.MULTILINE)
    assert first is not None, out  # the first frame with session rows was seen, and the peak RSS read
    assert float(first.group(2)) > 0 and int(first.group(3)) > 0
    assert all(int(m.group(3)) > 0 for m in rows.values())  # the console wrote to its terminal
    assert "pg_activity was not run" in out  # short mode: the reference figures, said so
