"""The engine's REST API: RustyDB's paths and field names, served with real data."""

from __future__ import annotations

from fastapi import FastAPI

from ..engine import VERSION, Engine
from .errors import RequestContext, install_error_handlers
from .routes import include_all


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
    install_error_handlers(app)
    include_all(app)
    app.add_middleware(RequestContext)
    return app


__all__ = ["create_app"]
