"""Request dependencies: the engine, the caller (authenticated) and the role a route needs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..auth import ApiRole, Forbidden, Principal, Unauthorized
from ..engine import Engine

_bearer = HTTPBearer(auto_error=False, description="token from POST /api/v1/auth/login")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="key from `rdbtop-engine apikey create`")


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def current_principal(request: Request,
                      bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
                      api_key: Annotated[str | None, Depends(_api_key)]) -> Principal:
    engine: Engine = request.app.state.engine
    if bearer is None and request.headers.get("authorization") is not None:
        # a credential we cannot read is refused, not skipped for the X-API-Key beside it
        raise Unauthorized("the Authorization header must be 'Bearer <token>'")
    return engine.auth.authenticate(bearer.credentials if bearer else None, api_key)


def require(role: ApiRole) -> Callable[..., Principal]:
    def check(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role < role:
            raise Forbidden(f"this action needs the {role.label} role; {principal.name} has {principal.role.label}",
                            required_role=role.label, role=principal.role.label)
        return principal

    check.__name__ = f"require_{role.label}"
    return check


Monitor = Annotated[Principal, Depends(require(ApiRole.MONITOR))]
Operator = Annotated[Principal, Depends(require(ApiRole.OPERATOR))]
Admin = Annotated[Principal, Depends(require(ApiRole.ADMIN))]
