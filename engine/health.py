"""Health: real checks of storage, background services, connections, memory and disk, and the
liveness, readiness and startup verdicts RustyDB's probes report, built from those checks.

Every check is cheap (a few stat calls, each schema file's 20-byte header, one tiny file write),
so probes may call them as often as an orchestrator likes. Each check is timed, and a check that
itself fails reports `unknown` with the reason instead of raising. Storage is unhealthy when a
schema file is no longer in WAL mode (changed by a tool outside the engine: the engine's own SQL
cannot change it).
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import psutil

if TYPE_CHECKING:
    from .engine import Engine, PeriodicService


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    UNKNOWN = "unknown"


# RustyDB's order: Unhealthy > Degraded > Unknown > Healthy.
_SEVERITY = {HealthStatus.HEALTHY: 0, HealthStatus.UNKNOWN: 1, HealthStatus.DEGRADED: 2, HealthStatus.UNHEALTHY: 3}


def worst(statuses: Iterable[HealthStatus]) -> HealthStatus:
    return max(statuses, key=_SEVERITY.__getitem__, default=HealthStatus.HEALTHY)


@dataclass
class HealthLimits:
    """Where a reading turns degraded or unhealthy (RustyDB's thresholds where it has them)."""

    connections_degraded_ratio: float = 0.80
    connections_unhealthy_ratio: float = 1.00
    memory_degraded_percent: float = 85.0
    memory_unhealthy_percent: float = 95.0
    disk_free_degraded_percent: float = 10.0
    disk_free_unhealthy_percent: float = 2.0
    # A service that has not finished a tick for this many intervals (plus the grace, which absorbs
    # a slow tick and a just-changed interval) has stalled.
    service_stale_intervals: float = 3.0
    service_stale_grace_seconds: float = 1.0


@dataclass(frozen=True)
class CheckResult:
    component: str
    status: HealthStatus
    message: str
    checked_at: float
    duration_seconds: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Probe:
    """One probe's verdict: `ok` is alive, ready or initialized; `checks` are what it was judged on."""

    status: HealthStatus
    ok: bool
    message: str
    timestamp: float
    checks: tuple[CheckResult, ...]


@dataclass(frozen=True)
class StartupProbe:
    status: HealthStatus
    initialized: bool
    message: str
    timestamp: float
    checks: dict[str, bool]


@dataclass(frozen=True)
class HealthReport:
    status: HealthStatus
    timestamp: float
    components: tuple[CheckResult, ...]
    liveness: Probe
    readiness: Probe
    startup: StartupProbe


Verdict = tuple[HealthStatus, str, dict[str, Any]]

_SERVICE_COMPONENTS = {"ash": "ash_sampler", "deadlock": "deadlock_detector", "stats": "stats_collector"}


def _level(value: float, degraded: float, unhealthy: float) -> HealthStatus:
    if value >= unhealthy:
        return HealthStatus.UNHEALTHY
    if value >= degraded:
        return HealthStatus.DEGRADED
    return HealthStatus.HEALTHY


class HealthService:
    def __init__(self, engine: Engine, limits: HealthLimits | None = None) -> None:
        self._engine = engine
        self.limits = limits or HealthLimits()
        self._process = psutil.Process(os.getpid())

    # -- probes ------------------------------------------------------------------------------

    def liveness(self) -> Probe:
        return self._liveness(self._service_checks())

    def readiness(self) -> Probe:
        return self._readiness(self._readiness_checks())

    def startup(self) -> StartupProbe:
        e = self._engine
        checks = {"storage_opened": e.storage.main_path.is_file(),
                  "services_started": e.running and bool(e.services)}
        done = sum(checks.values())
        initialized = done == len(checks)
        return StartupProbe(HealthStatus.HEALTHY if initialized else HealthStatus.UNHEALTHY, initialized,
                            f"{done}/{len(checks)} initialization checks completed", e.clock.time(), checks)

    def full(self) -> HealthReport:
        """Every check once; the three probes are judged on the same results."""
        readiness_checks = self._readiness_checks()
        service_checks = self._service_checks()
        liveness, readiness, startup = (self._liveness(service_checks), self._readiness(readiness_checks),
                                        self.startup())
        components = readiness_checks + service_checks
        status = worst([*(c.status for c in components), liveness.status, readiness.status, startup.status])
        return HealthReport(status, self._engine.clock.time(), components, liveness, readiness, startup)

    def _liveness(self, services: tuple[CheckResult, ...]) -> Probe:
        e = self._engine
        if not e.running:
            return Probe(HealthStatus.UNHEALTHY, False, "engine is not running", e.clock.time(), services)
        failing = [c for c in services if c.status is not HealthStatus.HEALTHY]
        status = worst(c.status for c in services)
        message = "; ".join(f"{c.component}: {c.message}" for c in failing) or \
            f"{len(services)} background services running"
        return Probe(status, status is not HealthStatus.UNHEALTHY, message, e.clock.time(), services)

    def _readiness(self, dependencies: tuple[CheckResult, ...]) -> Probe:
        e = self._engine
        if not e.running:
            return Probe(HealthStatus.UNHEALTHY, False, "engine is not running", e.clock.time(), dependencies)
        status = worst(c.status for c in dependencies)
        healthy = sum(c.status is HealthStatus.HEALTHY for c in dependencies)
        return Probe(status, status is not HealthStatus.UNHEALTHY,
                     f"{healthy}/{len(dependencies)} dependencies healthy", e.clock.time(), dependencies)

    # -- checks ------------------------------------------------------------------------------

    def _readiness_checks(self) -> tuple[CheckResult, ...]:
        return (self._run("storage", self._storage), self._run("connections", self._connections),
                self._run("memory", self._memory), self._run("disk", self._disk))

    def _service_checks(self) -> tuple[CheckResult, ...]:
        return tuple(self._run(_SERVICE_COMPONENTS.get(s.name, f"{s.name}_service"), lambda s=s: self._service(s))
                     for s in self._engine.services)

    def _run(self, component: str, check: Callable[[], Verdict]) -> CheckResult:
        checked_at = self._engine.clock.time()
        started = time.perf_counter()
        try:
            status, message, details = check()
        except Exception as exc:  # a check that cannot run says so; the probe must still answer
            status, message, details = HealthStatus.UNKNOWN, f"check failed: {exc}", {"error": repr(exc)}
        return CheckResult(component, status, message, checked_at, time.perf_counter() - started, details)

    def _storage(self) -> Verdict:
        storage = self._engine.storage
        details: dict[str, Any] = {"data_directory": str(storage.data_dir)}
        # A real write where the data lives, named per call so concurrent probes do not collide.
        probe = storage.data_dir / f".health-probe-{secrets.token_hex(6)}"
        payload = secrets.token_bytes(16)
        try:
            try:
                probe.write_bytes(payload)
                read_back = probe.read_bytes()
            finally:
                probe.unlink(missing_ok=True)
        except OSError as exc:
            return HealthStatus.UNHEALTHY, f"data directory is not writable: {exc.strerror or exc}", details
        if read_back != payload:
            return HealthStatus.UNHEALTHY, "data directory returned other bytes than were written", details
        missing = [name for name, path in storage.files().items() if not path.is_file()]
        if missing:
            return HealthStatus.UNHEALTHY, f"database files missing: {', '.join(missing)}", details
        details["size_bytes"] = storage.size_bytes()
        details["schemas"] = len(storage.files())
        not_in_wal = storage.not_in_wal()
        if not_in_wal:
            details["not_in_wal"] = not_in_wal
            return (HealthStatus.UNHEALTHY, f"schemas not in WAL mode: {', '.join(not_in_wal)} (changed outside the "
                    "engine, whose lock manager relies on WAL)", details)
        return HealthStatus.HEALTHY, "data directory writable, database files present", details

    def _connections(self) -> Verdict:
        e = self._engine
        limit = e.config.max_connections
        used = len(e.session_objects())
        ratio = used / limit
        lim = self.limits
        status = _level(ratio, lim.connections_degraded_ratio, lim.connections_unhealthy_ratio)
        return status, f"{used} of {limit} connections in use ({100 * ratio:.0f} %)", {
            "connections": used, "max_connections": limit, "usage_percent": round(100 * ratio, 2)}

    def _memory(self) -> Verdict:
        mem = psutil.virtual_memory()
        rss = self._process.memory_info().rss
        lim = self.limits
        status = _level(mem.percent, lim.memory_degraded_percent, lim.memory_unhealthy_percent)
        return status, f"host memory {mem.percent:.1f} % used; engine process {rss / 2**20:.0f} MiB", {
            "host_memory_percent": mem.percent, "host_memory_total_bytes": mem.total,
            "host_memory_available_bytes": mem.available, "process_rss_bytes": rss}

    def _disk(self) -> Verdict:
        usage = psutil.disk_usage(str(self._engine.storage.data_dir))
        free_percent = 100.0 * usage.free / usage.total if usage.total else 0.0
        lim = self.limits
        if free_percent <= lim.disk_free_unhealthy_percent:
            status = HealthStatus.UNHEALTHY
        elif free_percent <= lim.disk_free_degraded_percent:
            status = HealthStatus.DEGRADED
        else:
            status = HealthStatus.HEALTHY
        return status, f"{usage.free / 2**30:.1f} GiB free ({free_percent:.1f} %) where the data lives", {
            "free_bytes": usage.free, "total_bytes": usage.total, "free_percent": round(free_percent, 2)}

    def _service(self, service: PeriodicService) -> Verdict:
        interval = service.interval_seconds
        since = service.last_tick_mono if service.last_tick_mono is not None else service.started_mono
        age = None if since is None else time.monotonic() - since
        details: dict[str, Any] = {"ticks": service.ticks, "interval_seconds": interval,
                                   "seconds_since_last_tick": None if age is None else round(age, 3),
                                   "consecutive_failures": service.consecutive_failures,
                                   "last_error": service.last_error}
        if not service.alive:
            return HealthStatus.UNHEALTHY, "thread is not running", details
        stale_after = self.limits.service_stale_intervals * interval + self.limits.service_stale_grace_seconds
        if age is not None and age > stale_after:
            return HealthStatus.UNHEALTHY, f"stalled: no tick for {age:.1f} s (expected every {interval:g} s)", details
        if service.consecutive_failures:
            return (HealthStatus.DEGRADED,
                    f"last {service.consecutive_failures} ticks failed: {service.last_error}", details)
        return HealthStatus.HEALTHY, f"ticking every {interval:g} s", details
