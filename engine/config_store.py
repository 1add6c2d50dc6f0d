"""Settings that outlive the process: `<data_dir>/engine.toml`, written by PUT /admin/config.

The file holds only what was set through the API (or by hand while the engine was stopped); every
other setting keeps the value the engine was started with. At start the file's values are laid over
the engine's configuration, each checked like an API change: a bad file stops the start with an
error naming the file and the key, never a silent default. A change to a setting that applies at
restart is saved at once and reported as pending until the engine restarts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import threading
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w

from .audit import audit
from .config import Applies, EngineConfig, applies, check_setting
from .errors import NO_SPACE, EngineError, StorageFull

if TYPE_CHECKING:
    from .engine import Engine

log = logging.getLogger("engine.config")

FILE_NAME = "engine.toml"
_HEADER = ("# rdbtop engine settings, saved by PUT /api/v1/admin/config.\n"
           "# Edit only while the engine is stopped; keys and ranges: GET /api/v1/admin/config.\n")


class ConfigFileError(EngineError):
    """The settings file cannot be used; the engine does not start."""

    code = "CONFIG_FILE_ERROR"


@dataclass(frozen=True)
class SettingState:
    name: str
    value: Any  # in force now
    default: Any
    unit: str
    min: float | None
    max: float | None
    applies: Applies
    choices: tuple[str, ...]
    doc: str
    saved: bool  # set in the settings file
    pending_value: Any  # saved, and waiting for a restart to apply; None when nothing waits


@dataclass(frozen=True)
class ConfigUpdate:
    changed: dict[str, tuple[Any, Any]]  # key -> (old, new) as saved
    applied: tuple[str, ...]  # keys whose new value is in force now (live or for new sessions)
    pending: tuple[str, ...]  # keys whose new value waits for a restart


class ConfigStore:
    """The settings file and the engine's live settings, changed together."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._mutex = threading.Lock()
        self.saved: dict[str, Any] = {}
        self.updated_at: float | None = None

    def load(self, config: EngineConfig) -> EngineConfig:
        """`config` with the file's settings laid over it."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return config
        except OSError as exc:
            raise ConfigFileError(f"cannot read the settings file {self.path}: {exc.strerror}", file=str(self.path))
        try:
            values = tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigFileError(f"bad settings file {self.path}: {exc}", file=str(self.path))
        saved = {}
        for key, value in values.items():
            try:
                saved[key] = check_setting(key, value)
            except EngineError as exc:
                raise ConfigFileError(f"bad setting {key} in {self.path}: {exc.message}", file=str(self.path),
                                      key=key)
        self.saved = saved
        self.updated_at = self.path.stat().st_mtime
        return dataclasses.replace(config, **saved)

    def describe(self, running: EngineConfig) -> list[SettingState]:
        pending = self.pending(running)
        return [SettingState(d["name"], getattr(running, d["name"]), d["default"], d["unit"], d["min"], d["max"],
                             d["applies"], d["choices"], d["doc"], d["name"] in self.saved, pending.get(d["name"]))
                for d in EngineConfig.describe()]

    def pending(self, running: EngineConfig) -> dict[str, Any]:
        """Saved settings that apply at restart and differ from the running ones."""
        return {k: v for k, v in self.saved.items()
                if applies(k) is Applies.RESTART and getattr(running, k) != v}

    def update(self, engine: Engine, changes: Mapping[str, Any], by: str) -> ConfigUpdate:
        """Check every change (nothing changes when one is bad), save them, apply the live ones."""
        try:
            values = {key: check_setting(key, value) for key, value in changes.items()}
        except EngineError as exc:
            audit(by, "config", str(exc.details.get("field", "settings")), f"refused: {exc.message}")
            raise
        with self._mutex:
            running = engine.config
            before = {**dataclasses.asdict(running), **self.saved}
            changed = {k: (before[k], v) for k, v in values.items() if before[k] != v}
            live = {k: v for k, v in values.items() if applies(k) is not Applies.RESTART}
            saved = {**self.saved, **values}
            self._save(saved)  # first: a change the disk refused must not be in force either
            self.saved = saved
            if live:
                engine.reconfigure(**live)
            pending = self.pending(engine.config)
        update = ConfigUpdate(changed, tuple(k for k in changed if k in live), tuple(k for k in changed if k in pending))
        for key, (old, new) in changed.items():
            log.info("setting %s changed from %r to %r by %s%s", key, old, new, by,
                     " (applies at restart)" if key in pending else "")
        audit(by, "config", "settings", "ok" if changed else "no change",
              changed={k: list(v) for k, v in changed.items()}, pending_restart=list(update.pending))
        return update

    def _save(self, values: dict[str, Any]) -> None:
        """Write a new file beside the old one, then rename it over: a crash leaves one or the other."""
        text = _HEADER + tomli_w.dumps(dict(sorted(values.items())))
        scratch = self.path.with_name(f".{self.path.name}.tmp")
        try:
            with scratch.open("w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(scratch, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                scratch.unlink(missing_ok=True)
            if exc.errno in NO_SPACE:
                raise StorageFull(f"the disk is full: cannot save the settings file {self.path}; nothing was "
                                  "changed", file=str(self.path)) from exc
            raise ConfigFileError(f"cannot save the settings file {self.path}: {exc.strerror}",
                                  file=str(self.path)) from exc
        self.updated_at = self.path.stat().st_mtime
