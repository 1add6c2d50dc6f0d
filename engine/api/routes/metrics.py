"""The engine's metrics as JSON (RustyDB's MetricsResponse) and as Prometheus text."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from ...metrics import CONTENT_TYPE, EngineMetrics
from ..deps import EngineDep, Monitor

router = APIRouter(prefix="/api/v1", tags=["metrics"])


class MetricData(BaseModel):
    value: float
    unit: str
    labels: dict[str, str]
    # additions
    name: str = Field(description="the metric this value belongs to (Prometheus name without rustydb_)")
    type: str = Field(description="counter, gauge or histogram")
    help: str


class MetricsResponse(BaseModel):
    timestamp: int
    metrics: dict[str, MetricData] = Field(
        description='keyed as the Prometheus sample without the rustydb_ prefix, e.g. sessions{state="idle"}')
    prometheus_format: str | None = Field(description="the Prometheus text, when include_prometheus is true")


@router.get("/metrics", response_model=MetricsResponse)
def metrics(engine: EngineDep, _: Monitor,
            include_prometheus: Annotated[bool, Query(description="also return the Prometheus text")] = False,
            ) -> MetricsResponse:
    service = EngineMetrics(engine)
    series = service.series()
    return MetricsResponse(
        timestamp=int(engine.clock.time()),
        metrics={s.key: MetricData(value=s.value, unit=s.unit, labels=s.labels, name=s.metric, type=s.kind.value,
                                   help=s.help) for s in series},
        prometheus_format=service.exposition().decode() if include_prometheus else None)


@router.get("/metrics/prometheus", response_class=Response,
            responses={200: {"description": "Prometheus text exposition format 0.0.4",
                             "content": {"text/plain": {"schema": {"type": "string"}}}}})
def prometheus(engine: EngineDep, _: Monitor) -> Response:
    return Response(EngineMetrics(engine).exposition(), media_type=CONTENT_TYPE)
