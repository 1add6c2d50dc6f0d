"""Request dependencies: the engine, the caller (authenticated) and the role a route needs."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ..auth import ApiRole, Forbidden, Principal, Unauthorized
from ..config import proxy_networks
from ..engine import Engine

_bearer = HTTPBearer(auto_error=False, description="token from POST /api/v1/auth/login")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="key from `rdbtop-engine apikey create`")


def get_engine(request: Request) -> Engine:
    return request.app.state.engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def client_address(request: Request, trusted_proxies: str) -> str:
    """Where a request comes from: the TCP peer, unless the peer is one of `trusted_proxies`; then the
    nearest X-Forwarded-For hop that is not itself a trusted proxy (hops further left were written by
    the client and prove nothing). The server never lets uvicorn rewrite the peer from the header."""
    peer = request.client.host if request.client else "unknown"
    networks = proxy_networks(trusted_proxies)
    if not networks or not _within(peer, networks):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getlist("x-forwarded-for")).split(",") if h.strip()]
    for hop in reversed(hops):
        if not _within(hop, networks):
            return hop if _address(hop) is not None else peer
    return hops[0] if hops else peer


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(host: str, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    address = _address(host)
    return address is not None and any(address in n for n in networks)


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
