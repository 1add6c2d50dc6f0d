"""A schemathesis run over our own OpenAPI document: no 5xx, no schema violations, on any input."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)
from schemathesis.checks import not_a_server_error

from engine import Engine, EngineConfig
from engine.api import create_app

# One engine for the whole run: schemathesis loads the schema when the module is imported.
_engine = Engine(config=EngineConfig(lock_timeout_ms=200, query_timeout_secs=2.0,
                                     deadlock_check_interval_ms=100)).start()
_engine.auth.ensure_admin("fuzz-admin-password")
_app = create_app(_engine)
# an API key, not a login token: the fuzzer may log out or change the admin user, which revokes tokens
_key = _engine.auth.create_api_key("admin")
schema = schemathesis.openapi.from_asgi("/api-docs/openapi.json", _app)


@pytest.fixture(scope="module", autouse=True)
def _close_engine():
    # the fuzzer may open transactions, start sessions and change settings: all of it dies with the engine
    for _ in range(3):
        _engine.connect("fuzz-target", "schemathesis")
    yield
    _engine.close()


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(headers={"X-API-Key": _key},
                           checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance, negative_data_rejection])
