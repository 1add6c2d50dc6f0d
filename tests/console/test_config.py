"""Settings precedence (command line, environment, profile, file defaults) and theme files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from rdbtop.config import ConfigError, config_path, resolve
from rdbtop.themes import SHIPPED, load_themes

CONFIG = """
theme = "rdb-light"
interval = 5
api_key = "file-key"

[profiles.prod]
url = "http://prod:8080"
token = "prod-token"
interval = 1
"""


def test_command_line_over_environment_over_profile_over_defaults(tmp_path: Path) -> None:
    config_path().write_text(CONFIG)
    s = resolve({}, {}, None)
    assert (s.theme, s.interval, s.api_key, s.url, s.embedded) == ("rdb-light", 5.0, "file-key", None, True)
    s = resolve({}, {}, "prod")
    assert (s.url, s.token, s.interval) == ("http://prod:8080", "prod-token", 1.0)
    s = resolve({}, {"RDBTOP_URL": "http://env:1", "RDBTOP_TOKEN": "env-token"}, "prod")
    assert (s.url, s.token) == ("http://env:1", "env-token")
    s = resolve({"url": "http://cli:2", "interval": 0.5, "watch": True}, {"RDBTOP_URL": "http://env:1"}, "prod")
    assert (s.url, s.interval, s.watch, s.read_only, s.mutations_allowed) == ("http://cli:2", 0.5, True, True, False)


def test_config_problems_are_told_plainly() -> None:
    with pytest.raises(ConfigError, match="no config file"):
        resolve({}, {}, "prod")
    config_path().write_text(CONFIG)
    with pytest.raises(ConfigError, match=r"no profile 'staging' \(profiles: prod\)"):
        resolve({}, {}, "staging")
    config_path().write_text("interval = [")
    with pytest.raises(ConfigError, match="cannot read"):
        resolve({}, {}, None)


def test_user_themes_replace_and_add_and_bad_ones_are_reported(tmp_path: Path) -> None:
    mine = tmp_path / "themes"
    mine.mkdir()
    (mine / "rdb-dark.toml").write_text('name = "rdb-dark"\nprimary = "#FF0000"\n')
    (mine / "mine.toml").write_text('name = "mine"\nprimary = "#00FF00"\ndark = false\n')
    (mine / "bad.toml").write_text('name = "bad"\nprimary = "not a colour"\n')
    (mine / "odd.toml").write_text('name = "odd"\nprimary = "#000000"\nsparkle = true\n')
    themes, problems = load_themes(SHIPPED, mine)
    by_name = {t.name: t for t in themes}
    assert set(by_name) == {"rdb-dark", "rdb-light", "rdb-contrast", "mine"}
    assert by_name["rdb-dark"].primary == "#FF0000"
    assert len(problems) == 2 and any("sparkle" in p for p in problems)


def test_the_config_file_lives_in_the_user_config_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RDBTOP_CONFIG")
    assert config_path().parts[-2:] == ("rdbtop", "config.toml")
    assert os.fspath(config_path()).startswith(os.path.expanduser("~"))
