"""Health probes (public, as in RustyDB): liveness, readiness, startup, full, and admin/health.

200 when the probe passes; 503 with the same body when the engine is not alive, not ready, not
initialized, or (for /health/full and /admin/health) unhealthy. A degraded engine still answers
200, with `status: "degraded"`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from ...engine import VERSION
from ...health import CheckResult, HealthReport, HealthStatus, Probe, StartupProbe
from ..deps import EngineDep

router = APIRouter(prefix="/api/v1", tags=["health"])


class LivenessProbeResponse(BaseModel):
    status: HealthStatus
    timestamp: int
    uptime_seconds: int | None
    # additions
    message: str
    services: dict[str, HealthStatus] = Field(description="each background service's status")


class ReadinessProbeResponse(BaseModel):
    status: HealthStatus
    timestamp: int
    ready: bool
    dependencies: dict[str, HealthStatus]
    # additions
    message: str


class StartupProbeResponse(BaseModel):
    status: HealthStatus
    timestamp: int
    initialized: bool
    checks: dict[str, bool]
    # additions
    message: str


class ComponentHealthDetail(BaseModel):
    component: str
    status: HealthStatus
    message: str
    duration_ms: int = Field(description="how long the check took, rounded to whole milliseconds")
    details: dict[str, Any]
    # additions
    duration_us: int = Field(description="how long the check took, in microseconds")
    checked_at: int


class FullHealthResponse(BaseModel):
    status: HealthStatus
    timestamp: int
    components: list[ComponentHealthDetail]
    liveness: LivenessProbeResponse
    readiness: ReadinessProbeResponse
    startup: StartupProbeResponse


class ComponentHealth(BaseModel):
    status: HealthStatus
    message: str | None
    last_check: int


class HealthResponse(BaseModel):
    status: HealthStatus
    version: str
    uptime_seconds: int
    checks: dict[str, ComponentHealth]


def _same_body(model: type[BaseModel], when: str) -> dict[int | str, dict[str, Any]]:
    return {503: {"model": model, "description": f"{when}; the body has the same shape as on 200"}}


def _answer(response: Response, passed: bool) -> None:
    response.status_code = 200 if passed else 503


def _liveness(p: Probe, uptime: float) -> LivenessProbeResponse:
    return LivenessProbeResponse(status=p.status, timestamp=int(p.timestamp), uptime_seconds=int(uptime),
                                 message=p.message, services={c.component: c.status for c in p.checks})


def _readiness(p: Probe) -> ReadinessProbeResponse:
    return ReadinessProbeResponse(status=p.status, timestamp=int(p.timestamp), ready=p.ok,
                                  dependencies={c.component: c.status for c in p.checks}, message=p.message)


def _startup(p: StartupProbe) -> StartupProbeResponse:
    return StartupProbeResponse(status=p.status, timestamp=int(p.timestamp), initialized=p.initialized,
                                checks=p.checks, message=p.message)


def _component(c: CheckResult) -> ComponentHealthDetail:
    return ComponentHealthDetail(component=c.component, status=c.status, message=c.message,
                                 duration_ms=round(c.duration_seconds * 1000), details=c.details,
                                 duration_us=round(c.duration_seconds * 1_000_000), checked_at=int(c.checked_at))


def _unhealthy(report: HealthReport) -> bool:
    return report.status is HealthStatus.UNHEALTHY


@router.get("/health/liveness", response_model=LivenessProbeResponse,
            responses=_same_body(LivenessProbeResponse, "not alive"))
def liveness(engine: EngineDep, response: Response) -> LivenessProbeResponse:
    probe = engine.health.liveness()
    _answer(response, probe.ok)
    return _liveness(probe, engine.uptime_seconds)


@router.get("/health/readiness", response_model=ReadinessProbeResponse,
            responses=_same_body(ReadinessProbeResponse, "not ready"))
def readiness(engine: EngineDep, response: Response) -> ReadinessProbeResponse:
    probe = engine.health.readiness()
    _answer(response, probe.ok)
    return _readiness(probe)


@router.get("/health/startup", response_model=StartupProbeResponse,
            responses=_same_body(StartupProbeResponse, "not initialized"))
def startup(engine: EngineDep, response: Response) -> StartupProbeResponse:
    probe = engine.health.startup()
    _answer(response, probe.initialized)
    return _startup(probe)


@router.get("/health/full", response_model=FullHealthResponse,
            responses=_same_body(FullHealthResponse, "unhealthy (degraded answers 200)"))
def full(engine: EngineDep, response: Response) -> FullHealthResponse:
    report = engine.health.full()
    _answer(response, not _unhealthy(report))
    return FullHealthResponse(status=report.status, timestamp=int(report.timestamp),
                              components=[_component(c) for c in report.components],
                              liveness=_liveness(report.liveness, engine.uptime_seconds),
                              readiness=_readiness(report.readiness), startup=_startup(report.startup))


@router.get("/admin/health", response_model=HealthResponse, responses=_same_body(HealthResponse, "unhealthy"))
def admin_health(engine: EngineDep, response: Response) -> HealthResponse:
    report = engine.health.full()
    _answer(response, not _unhealthy(report))
    return HealthResponse(status=report.status, version=VERSION, uptime_seconds=int(engine.uptime_seconds),
                          checks={c.component: ComponentHealth(status=c.status, message=c.message,
                                                               last_check=int(c.checked_at))
                                  for c in report.components})
