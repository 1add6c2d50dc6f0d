"""The engine's REST API: RustyDB's paths and field names, served with real data."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.constants import REF_PREFIX

from ..engine import VERSION, Engine
from .cache import TickCache
from .errors import ApiError, RequestContext, install_error_handlers
from .routes import include_all

# Every operation can answer these with an ApiError body; saying so keeps the OpenAPI document honest.
_ERROR_RESPONSES = {
    400: "invalid input (VALIDATION_ERROR, SQL_ERROR)", 401: "no valid credentials", 403: "role too low",
    404: "unknown id or path", 405: "method not allowed", 409: "state conflict or statement outcome",
    413: "request body too large", 429: "rate limited", 500: "unexpected error (see request_id)",
    503: "engine unavailable or unhealthy",
    507: "the disk is full (INSUFFICIENT_STORAGE): nothing was changed",
}



def create_app(engine: Engine) -> FastAPI:
    """An ASGI app over a running engine; the caller owns the engine's life cycle."""
    app = FastAPI(
        title="rdbtop engine API",
        version=VERSION,
        description="RustyDB-compatible monitoring and administration API with real data.",
        openapi_url="/api-docs/openapi.json",
        docs_url="/swagger-ui",
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.ticks = TickCache()  # bodies built once per engine tick, shared by every client
    install_error_handlers(app)
    # The error responses refer to the ApiError schema instead of naming the model: FastAPI builds a
    # validator per route for every response model, twice (when a route is defined, and again on the
    # first request that reaches its router), and these ten on ninety routes were most of the 0.4 s
    # that the first request cost; the OpenAPI document is the same (openapi() adds the schema).
    include_all(app, {status: {"description": text, "content": {"application/json": {"schema": {
        "$ref": f"{REF_PREFIX}ApiError"}}}} for status, text in _ERROR_RESPONSES.items()})
    app.add_middleware(RequestContext)
    _finish_openapi(app, engine)
    return app


def _finish_openapi(app: FastAPI, engine: Engine) -> None:
    """FastAPI documents a 422 for validation errors; ours are 400 ApiError, so the 422 must go. And
    what only the running engine knows (the metrics alert rules may watch) becomes an enum."""
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = generate()
            schema.setdefault("components", {}).setdefault("schemas", {}).setdefault(
                "ApiError", ApiError.model_json_schema(ref_template=f"{REF_PREFIX}{{model}}"))
            for operations in schema["paths"].values():
                for operation in operations.values():
                    operation.get("responses", {}).pop("422", None)
            for name in ("HTTPValidationError", "ValidationError"):
                schema.get("components", {}).get("schemas", {}).pop(name, None)
            _json_schema_bounds(schema)
            metrics = [m.name for m in engine.alerts.metrics()]
            for model in ("RuleCreate", "RuleUpdate"):
                schema["components"]["schemas"][model]["properties"]["metric"]["enum"] = metrics
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


_BOUNDS = {"ge": "minimum", "le": "maximum", "gt": "exclusiveMinimum", "lt": "exclusiveMaximum"}


def _json_schema_bounds(node: object) -> None:
    """Pydantic writes a number's bounds under their Python names (ge, le) when a validator runs
    before the type's own (models.JsonInt); JSON Schema calls them minimum and maximum."""
    if isinstance(node, dict):
        if node.get("type") in ("integer", "number"):
            for python, json_schema in _BOUNDS.items():
                if python in node:  # a bound the field's json_schema_extra states stands
                    node.setdefault(json_schema, node.pop(python))
        for value in node.values():
            _json_schema_bounds(value)
    elif isinstance(node, list):
        for value in node:
            _json_schema_bounds(value)


__all__ = ["create_app"]
