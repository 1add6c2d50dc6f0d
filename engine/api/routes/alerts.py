"""Alerts: the list with acknowledge (RustyDB's paths), plus rules, silences and metric names."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Path, Query, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from ...alerts import MAX_DURATION_SECONDS, WEBHOOK_URL_PATTERN, AlertState, Category, Op, Rule, Severity
from ...alerts import Alert as EngineAlert
from ...alerts import Silence as EngineSilence
from ...auth import ApiRole, Principal
from ...redaction import redact_url
from ..deps import Admin, EngineDep, Monitor, Operator
from ..models import JsonInt

router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
AlertId = Annotated[str, Path(pattern=ID_PATTERN, description="alert_id")]
RuleId = Annotated[str, Path(pattern=ID_PATTERN, description="rule_id")]
SilenceId = Annotated[str, Path(pattern=ID_PATTERN, description="silence_id")]
Seconds = Annotated[float, Field(strict=True, ge=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False)]
PositiveSeconds = Annotated[float, Field(strict=True, gt=0, le=MAX_DURATION_SECONDS, allow_inf_nan=False)]
Threshold = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-1e15, le=1e15)]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200, pattern=r"\S")]
MetricName = Annotated[StrictStr, Field(min_length=1, max_length=64)]
WebhookUrl = Annotated[StrictStr, Field(max_length=2048, pattern=WEBHOOK_URL_PATTERN,
                                        description="POSTed a JSON body {event, alert, sent_at} when an alert of "
                                                    "this rule fires or resolves")]
Description = Annotated[StrictStr, Field(max_length=1000)]
_CASE = "case-insensitive"


# -- models ----------------------------------------------------------------------------------

class AlertAcknowledgement(BaseModel):
    occurrence: int = Field(description="the firing it was given for (occurrence_count then)")
    acknowledged_by: str
    acknowledged_at: int
    note: str | None


class Alert(BaseModel):
    alert_id: str
    severity: Severity
    title: str
    description: str
    triggered_at: int = Field(description="when the condition was first met (Unix seconds)")
    acknowledged: bool
    # additions
    state: AlertState = Field(description="pending, firing, acknowledged (firing, seen by an operator), "
                                          "silenced (firing, held back by a silence) or resolved")
    category: Category
    rule: str = Field(description="rule_id of the rule that raised it")
    metric: str
    operator: Op
    value: float = Field(description="the metric's value when the condition was last met")
    threshold: float
    unit: str
    acknowledged_by: str | None
    acknowledged_at: int | None
    acknowledge_note: str | None
    resolved_at: int | None = Field(description="when the condition last cleared after firing")
    occurrence_count: int = Field(description="how many times it fired")
    last_fired_at: int | None
    pending_since: int | None = Field(description="start of the current pending period")
    silenced_by: str | None = Field(description="silence_id of the silence holding it back")
    labels: dict[str, str] = Field(description="what it is about, e.g. session_id, username, sql_id")
    acknowledgements: list[AlertAcknowledgement] = Field(
        description="who acknowledged which firing, oldest first (the last 10). An acknowledgement holds across a "
                    "repeat firing within the rule's cooldown_seconds of resolving; a later one needs a new one")

    @classmethod
    def of(cls, alert: EngineAlert) -> Alert:
        return cls.model_validate(alert.as_dict())


class AlertResponse(BaseModel):
    alerts: list[Alert]
    active_count: int = Field(description="alerts firing that nobody acknowledged and no silence holds, of all "
                                          "alerts (not only the filtered ones)")
    # additions
    total_count: int = Field(description="alerts in this answer")


class AcknowledgeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: StrictStr | None = Field(None, max_length=1000)


class AlertRule(BaseModel):
    rule_id: str
    name: str
    metric: str
    operator: Op
    threshold: float
    for_seconds: float = Field(description="how long the condition must hold before the alert fires")
    severity: Severity
    category: Category
    cooldown_seconds: float = Field(description="least time between two firings of one alert")
    enabled: bool
    webhook_url: str | None = Field(description="scheme and host only (https://host/…) unless the caller is an admin")
    description: str
    builtin: bool = Field(description="built-in rules can be tuned and disabled, not deleted")
    created_at: int
    updated_at: int
    metric_available: bool = Field(description="false while nothing provides the metric: the rule cannot fire")

    @classmethod
    def of(cls, rule: Rule, available: bool, reveal: bool) -> AlertRule:
        return cls(rule_id=rule.rule_id, name=rule.name, metric=rule.metric, operator=rule.operator,
                   threshold=rule.threshold, for_seconds=rule.for_seconds, severity=rule.severity,
                   category=rule.category, cooldown_seconds=rule.cooldown_seconds, enabled=rule.enabled,
                   webhook_url=rule.webhook_url if reveal or rule.webhook_url is None else redact_url(rule.webhook_url),
                   description=rule.description, builtin=rule.builtin,
                   created_at=int(rule.created_at), updated_at=int(rule.updated_at), metric_available=available)


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rule_id: StrictStr | None = Field(None, pattern=ID_PATTERN, description="chosen by the server when left out")
    name: Name
    metric: MetricName = Field(description="one of GET /api/v1/alerts/metrics")
    operator: Op
    threshold: Threshold
    for_seconds: Seconds = 0.0
    severity: Severity = Field(Severity.WARNING, description=_CASE)
    category: Category = Field(Category.PERFORMANCE, description=_CASE)
    cooldown_seconds: Seconds = 300.0
    enabled: StrictBool = True
    webhook_url: WebhookUrl | None = None
    description: Description = ""


class RuleUpdate(BaseModel):
    """Fields left out keep their values; `webhook_url: null` removes the webhook."""

    model_config = ConfigDict(extra="forbid")
    name: Name = Field(None)
    metric: MetricName = Field(None)
    operator: Op = Field(None)
    threshold: Threshold = Field(None)
    for_seconds: Seconds = Field(None)
    severity: Severity = Field(None, description=_CASE)
    category: Category = Field(None, description=_CASE)
    cooldown_seconds: Seconds = Field(None)
    enabled: StrictBool = Field(None)
    webhook_url: WebhookUrl | None = None
    description: Description = Field(None)


class SilenceRequest(BaseModel):
    """Silences alerts of `rule_id` (404 when there is no such rule) and/or with all of these label
    values, until it expires: at `expires_at` (409 when that is not in the future), or
    `duration_seconds` from now; one of the two, not both."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"allOf": [
        {"not": {"required": ["expires_at", "duration_seconds"],
                 "properties": {"expires_at": {"type": "integer"}, "duration_seconds": {"type": "number"}}}},
        {"anyOf": [{"required": ["expires_at"], "properties": {"expires_at": {"type": "integer"}}},
                   {"required": ["duration_seconds"], "properties": {"duration_seconds": {"type": "number"}}}]},
        {"anyOf": [{"required": ["rule_id"], "properties": {"rule_id": {"type": "string"}}},
                   {"required": ["labels"], "properties": {"labels": {"minProperties": 1}}}]}]})
    rule_id: StrictStr | None = Field(None, pattern=ID_PATTERN)
    labels: dict[Annotated[str, Field(max_length=128)], Annotated[StrictStr, Field(max_length=512)]] = Field(
        default_factory=dict, max_length=32)
    expires_at: JsonInt | None = Field(None, ge=0, le=2**40, description="Unix seconds; or give duration_seconds")
    duration_seconds: PositiveSeconds | None = None
    comment: StrictStr | None = Field(None, max_length=1000)


class Silence(BaseModel):
    silence_id: str
    rule_id: str | None
    labels: dict[str, str]
    comment: str | None
    created_by: str
    created_at: int
    expires_at: int
    active: bool = Field(description="false once expired: it no longer matches")

    @classmethod
    def of(cls, s: EngineSilence, now: float) -> Silence:
        return cls(silence_id=s.silence_id, rule_id=s.rule_id, labels=s.labels, comment=s.comment,
                   created_by=s.created_by, created_at=int(s.created_at), expires_at=int(s.expires_at),
                   active=s.active(now))


class AlertMetric(BaseModel):
    name: str
    unit: str
    description: str
    available: bool = Field(description="false while nothing provides it (e.g. backups not yet set up)")


class NotificationStats(BaseModel):
    queued: int
    capacity: int
    sent_total: int
    failed_total: int = Field(description="notifications given up after every retry")
    retries_total: int
    dropped_total: int = Field(description="notifications dropped because the queue was full")
    last_error: str | None


# -- alerts ----------------------------------------------------------------------------------

@router.get("", response_model=AlertResponse)
def list_alerts(engine: EngineDep, _: Monitor,
                severity: Annotated[Severity | None, Query(description=_CASE)] = None,
                state: Annotated[AlertState | None, Query()] = None,
                rule: Annotated[str | None, Query(pattern=ID_PATTERN, description="rule_id")] = None) -> AlertResponse:
    alerts = [Alert.of(a) for a in engine.alerts.alerts(severity, state, rule)]
    return AlertResponse(alerts=alerts, active_count=engine.alerts.active_count(), total_count=len(alerts))


# -- rules -----------------------------------------------------------------------------------

def _rule(engine: EngineDep, rule: Rule, who: Principal) -> AlertRule:
    return AlertRule.of(rule, engine.alerts.metric_available(rule.metric), reveal=who.role >= ApiRole.ADMIN)


@router.get("/rules", response_model=list[AlertRule])
def list_rules(engine: EngineDep, who: Monitor) -> list[AlertRule]:
    return [_rule(engine, r, who) for r in engine.alerts.rules()]


@router.post("/rules", response_model=AlertRule, status_code=201)
def create_rule(engine: EngineDep, who: Admin, body: RuleCreate) -> AlertRule:
    return _rule(engine, engine.alerts.create_rule(who.name, **body.model_dump()), who)


@router.get("/rules/{rule_id}", response_model=AlertRule)
def get_rule(engine: EngineDep, who: Monitor, rule_id: RuleId) -> AlertRule:
    return _rule(engine, engine.alerts.rule(rule_id), who)


@router.put("/rules/{rule_id}", response_model=AlertRule)
def update_rule(engine: EngineDep, who: Admin, rule_id: RuleId, body: RuleUpdate) -> AlertRule:
    return _rule(engine, engine.alerts.update_rule(rule_id, who.name, **body.model_dump(exclude_unset=True)), who)


@router.delete("/rules/{rule_id}", status_code=204, response_class=Response)
def delete_rule(engine: EngineDep, who: Admin, rule_id: RuleId) -> Response:
    engine.alerts.delete_rule(rule_id, who.name)
    return Response(status_code=204)


# -- silences --------------------------------------------------------------------------------

@router.get("/silences", response_model=list[Silence])
def list_silences(engine: EngineDep, _: Monitor) -> list[Silence]:
    now = engine.clock.time()
    return [Silence.of(s, now) for s in engine.alerts.silences()]


@router.post("/silences", response_model=Silence, status_code=201)
def create_silence(engine: EngineDep, who: Operator, body: SilenceRequest) -> Silence:
    silence = engine.alerts.create_silence(who.name, **body.model_dump())
    return Silence.of(silence, engine.clock.time())


@router.delete("/silences/{silence_id}", status_code=204, response_class=Response)
def delete_silence(engine: EngineDep, who: Operator, silence_id: SilenceId) -> Response:
    engine.alerts.delete_silence(silence_id, who.name)
    return Response(status_code=204)


# -- what rules can watch, and how notifications fare -----------------------------------------

@router.get("/metrics", response_model=list[AlertMetric])
def list_metrics(engine: EngineDep, _: Monitor) -> list[AlertMetric]:
    return [AlertMetric(name=m.name, unit=m.unit, description=m.description, available=m.available)
            for m in engine.alerts.metrics()]


@router.get("/notifications", response_model=NotificationStats)
def notification_stats(engine: EngineDep, _: Monitor) -> NotificationStats:
    n = engine.alerts.notifier
    return NotificationStats(queued=n.queued, capacity=n.capacity, sent_total=n.sent_total,
                             failed_total=n.failed_total, retries_total=n.retries_total,
                             dropped_total=n.dropped_total, last_error=n.last_error)


# -- one alert (after the fixed paths above, which its id pattern would also match) ------------

@router.get("/{alert_id}", response_model=Alert)
def get_alert(engine: EngineDep, _: Monitor, alert_id: AlertId) -> Alert:
    return Alert.of(engine.alerts.alert(alert_id))


@router.post("/{alert_id}/acknowledge", response_model=Alert)
def acknowledge_alert(engine: EngineDep, who: Operator, alert_id: AlertId,
                      body: Annotated[AcknowledgeRequest | None, Body()] = None) -> Alert:
    return Alert.of(engine.alerts.acknowledge(alert_id, who.name, body.note if body else None))
