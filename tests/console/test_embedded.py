"""Embedded by default: an engine in this process with the demo, live on screen within seconds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from rdbtop.app import RdbTop
from rdbtop.config import Settings
from rdbtop.sources import EmbeddedSource

from .conftest import HANG_GUARD_SECONDS, until

async def test_embedded_start_shows_live_data_quickly(tmp_path: Path) -> None:
    # how quickly is bench/console.py's to measure; here: the live data arrives, the demo runs
    source = EmbeddedSource(str(tmp_path), demo=True, seed=42, sessions=8, read_only=False)
    app = RdbTop(Settings(interval=1.0), source)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.shown is not None and app.shown.sessions, timeout=HANG_GUARD_SECONDS)
        await until(pilot, lambda: app.latest.overview.statements_per_second, timeout=HANG_GUARD_SECONDS)
        await pilot.press("2")
        await until(pilot, lambda: app.query_one("#sessions-table").row_count >= 8, timeout=HANG_GUARD_SECONDS)
    source.shutdown()
    assert not app.settings.read_only and app.client is not None


def test_once_json_embedded(tmp_path: Path) -> None:
    env = {**os.environ, "RDBTOP_CONFIG": str(tmp_path / "none.toml")}
    out = subprocess.run([sys.executable, "-m", "rdbtop", "--once", "--json", "--data", str(tmp_path / "d")],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert len(data["sessions"]) == 8 and data["not_served"].keys() <= {"alerts", "backups", "schedule"}


def test_once_tables_and_bad_arguments(tmp_path: Path) -> None:
    env = {**os.environ, "RDBTOP_CONFIG": str(tmp_path / "none.toml")}
    out = subprocess.run([sys.executable, "-m", "rdbtop", "--once", "--no-demo"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "Sessions" in out.stdout and "Blocking tree" in out.stdout
    out = subprocess.run([sys.executable, "-m", "rdbtop", "--json"], env=env, capture_output=True, text=True)
    assert out.returncode == 2 and "--json goes with --once" in out.stderr
    out = subprocess.run([sys.executable, "-m", "rdbtop", "--profile", "prod", "--once"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 2 and "no profile 'prod'" in out.stderr
