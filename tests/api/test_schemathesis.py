"""A schemathesis run over our own OpenAPI document, with every check schemathesis has: no 5xx, no
schema violations, no valid request refused, no invalid one accepted, Allow headers that match, on
positive and negative data, operation by operation and in stateful sequences along the links.

Deterministic: Hypothesis derandomized (the examples follow from each test's name, not from a seed
of the moment) and no example database (a failure found elsewhere is not replayed here), with a
bounded number of examples, so that a run takes the same steps on a fast or a loaded machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
import schemathesis.specs.openapi.checks  # noqa: F401 - registers the OpenAPI checks
from hypothesis import HealthCheck, settings
from schemathesis.checks import CHECKS
from schemathesis.specs.openapi.checks import positive_data_acceptance

from engine import Engine, EngineConfig, auth
from engine.api import create_app

EXAMPLES = 20  # per operation, on top of the coverage phase's own cases
SCENARIOS, STEPS = 12, 6  # stateful sequences, and calls in each
DETERMINISTIC = settings(derandomize=True, database=None, deadline=None, suppress_health_check=list(HealthCheck))

_fuzzed: dict[str, Any] = {}


def positive_data_accepted_unless_sqlite_refuses_the_sql(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, except for SQL that SQLite cannot run (`"sql": "0"`): the document says
    `sql` is a string, and which strings are SQL no schema can state, so that 400 SQL_ERROR is right."""
    if response.status_code == 400 and response.json().get("code") == "SQL_ERROR":
        return None
    return positive_data_acceptance(ctx, response, case)


ALL_CHECKS = [check for check in CHECKS.get_all() if check is not positive_data_acceptance] + [
    positive_data_accepted_unless_sqlite_refuses_the_sql]


@pytest.fixture(scope="module")
def api_schema() -> Iterator[schemathesis.schemas.BaseSchema]:
    # Built when the first case runs (not at import), so the engine lives only while it is fuzzed;
    # the fuzzer may open transactions, start sessions and change settings: all of it dies with it.
    # Every login, for any username, costs one scrypt; the fuzzer sends hundreds and may raise the
    # throttle's limits through PUT /admin/config, so its engine hashes cheaply.
    with pytest.MonkeyPatch.context() as cheap:
        cheap.setitem(auth.SCRYPT_PARAMS, "n", 2**4)
        engine = Engine(config=EngineConfig(lock_timeout_ms=200, query_timeout_secs=2.0,
                                            deadlock_check_interval_ms=100)).start()
        engine.auth.ensure_admin("fuzz-admin-password")
        for _ in range(3):
            engine.connect("fuzz-target", "schemathesis")
        # an API key, not a login token: the fuzzer may log out or change the admin user, which revokes tokens
        _fuzzed.update(engine=engine, headers={"X-API-Key": engine.auth.create_api_key("admin")},
                       settings={key: getattr(engine.config, key) for key in ("max_connections", "query_timeout_secs",
                                                                               "lock_timeout_ms", "log_level")})
        try:
            yield schemathesis.openapi.from_asgi("/api-docs/openapi.json", create_app(engine))
        finally:
            engine.close()


def _settle(case: Any) -> None:
    """Settings the fuzzer changed are put back, so that each case meets the same engine (one that
    allows one connection would answer every later case 503); a revoked key of its own is replaced."""
    engine: Engine = _fuzzed["engine"]
    if case.method.upper() == "PUT" and case.path.endswith("/admin/config"):
        engine.settings.update(engine, _fuzzed["settings"], by="schemathesis")
    if case.method.upper() == "DELETE" and "/admin/api-keys/" in case.path:
        _fuzzed["headers"] = {"X-API-Key": engine.auth.create_api_key("admin")}


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(DETERMINISTIC, max_examples=EXAMPLES)
def test_api_conforms_to_its_openapi_document(case) -> None:  # type: ignore[no-untyped-def]
    try:
        case.call_and_validate(headers=_fuzzed["headers"], checks=ALL_CHECKS)
    finally:
        _settle(case)


@pytest.mark.slow
def test_stateful_sequences_along_the_links_conform(api_schema: schemathesis.schemas.BaseSchema) -> None:
    class Workflow(api_schema.as_state_machine()):  # type: ignore[misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": _fuzzed["headers"]}

        def after_call(self, response: Any, case: Any) -> None:
            _settle(case)

        def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
            case.validate_response(response, checks=ALL_CHECKS, transport_kwargs=kwargs or None,
                                   recorder=self.recorder)

    Workflow.run(settings=settings(DETERMINISTIC, max_examples=SCENARIOS, stateful_step_count=STEPS))
