"""Settings from the command line, the environment and the config file, in that order of precedence.

The file is `config.toml` in the user config directory (platformdirs; `RDBTOP_CONFIG` names
another). Top-level keys are defaults; `[profiles.NAME]` tables override them for `--profile NAME`:

    theme = "rdb-dark"
    interval = 2
    [profiles.prod]
    url = "https://db1.example:8080"
    api_key = "rdb_..."
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import platformdirs

APP_NAME = "rdbtop"
DEFAULT_INTERVAL = 2.0
DEFAULT_BACKUP_MAX_AGE_HOURS = 26.0  # a daily backup plus two hours' slack
ENV = {"url": "RDBTOP_URL", "token": "RDBTOP_TOKEN", "api_key": "RDBTOP_API_KEY"}


class ConfigError(Exception):
    """A config file or profile that cannot be used, in words for the terminal."""


@dataclass
class Settings:
    url: str | None = None
    token: str | None = None
    api_key: str | None = None
    user: str | None = None
    theme: str | None = None
    interval: float = DEFAULT_INTERVAL
    data: str | None = None
    demo: bool = True
    seed: int = 42
    sessions: int = 8
    read_only: bool = False
    watch: bool = False
    rotate: float | None = None
    backup_max_age_hours: float = DEFAULT_BACKUP_MAX_AGE_HOURS
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        return self.url is None

    @property
    def mutations_allowed(self) -> bool:
        return not (self.read_only or self.watch)


_FILE_KEYS = {"url", "token", "api_key", "user", "theme", "interval", "read_only", "backup_max_age_hours", "data",
              "seed", "sessions"}


def config_path() -> Path:
    override = os.environ.get("RDBTOP_CONFIG")
    return Path(override) if override else platformdirs.user_config_path(APP_NAME) / "config.toml"


def user_themes_dir() -> Path:
    return config_path().parent / "themes"


def load_file(path: Path, profile: str | None) -> dict[str, Any]:
    if not path.exists():
        if profile:
            raise ConfigError(f"no config file at {path}, so there is no profile {profile!r}")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    values = {k: v for k, v in data.items() if k in _FILE_KEYS}
    if profile:
        profiles = data.get("profiles", {})
        if not isinstance(profiles, dict) or not isinstance(profiles.get(profile), dict):
            known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) and profiles else "none"
            raise ConfigError(f"{path} has no profile {profile!r} (profiles: {known})")
        values.update({k: v for k, v in profiles[profile].items() if k in _FILE_KEYS})
    return values


def resolve(cli: dict[str, Any], environ: dict[str, str], profile: str | None) -> Settings:
    """CLI values (None when not given) over environment over profile over top-level file keys."""
    merged: dict[str, Any] = load_file(config_path(), profile)
    merged.update({key: environ[var] for key, var in ENV.items() if environ.get(var)})
    merged.update({k: v for k, v in cli.items() if v is not None})
    known = {f.name for f in fields(Settings)}
    settings = Settings(**{k: v for k, v in merged.items() if k in known})
    try:
        settings.interval = float(settings.interval)
        settings.backup_max_age_hours = float(settings.backup_max_age_hours)
    except (TypeError, ValueError):
        raise ConfigError("interval and backup_max_age_hours must be numbers") from None
    if settings.watch:
        settings.read_only = True
    return settings
