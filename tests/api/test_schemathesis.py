"""A schemathesis run over our own OpenAPI document: no 5xx, no schema violations, on any input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, negative_data_rejection,
                                               response_schema_conformance, status_code_conformance)

from engine import Engine, EngineConfig, auth
from engine.api import create_app

_key: dict[str, str] = {}


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
        _key["admin"] = engine.auth.create_api_key("admin")
        try:
            yield schemathesis.openapi.from_asgi("/api-docs/openapi.json", create_app(engine))
        finally:
            engine.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_openapi_document(case) -> None:  # type: ignore[no-untyped-def]
    case.call_and_validate(headers={"X-API-Key": _key["admin"]},
                           checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                   response_schema_conformance, negative_data_rejection])
