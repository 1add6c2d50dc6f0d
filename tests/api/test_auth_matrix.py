"""Every route × no credentials / monitor / operator / admin: 401, 403, or let through."""

from __future__ import annotations

import re

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from engine import Engine
from engine.api import create_app
from engine.auth import ApiRole

PUBLIC = re.compile(r"^/api/v1/(health/|admin/health$|auth/)")
# Reads only an admin may make: who the users are, what their roles grant, which API keys exist.
ADMIN_READS = re.compile(r"^/api/v1/admin/(users|roles|api-keys)")
RANKS = {"monitor": ApiRole.MONITOR, "operator": ApiRole.OPERATOR, "admin": ApiRole.ADMIN}


def _required_role(route: APIRoute) -> ApiRole | None:
    """The role named by the route's `require_<role>` dependency, found anywhere in its tree."""
    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        name = getattr(dep.call, "__name__", "")
        if name.startswith("require_"):
            return RANKS[name.removeprefix("require_")]
        stack.extend(dep.dependencies)
    return None


def _routes() -> list[tuple[str, str, ApiRole | None]]:
    eng = Engine()
    try:
        stack, out = list(create_app(eng).routes), []
    finally:
        eng.close()
    while stack:
        route = stack.pop()
        if isinstance(route, APIRoute):
            if route.path.startswith("/api/"):
                out.extend((m, route.path, _required_role(route)) for m in route.methods - {"HEAD"})
        elif hasattr(route, "original_router"):  # FastAPI >= 0.165 keeps included routers nested
            stack.extend(route.original_router.routes)
    return sorted(out, key=lambda r: (r[1], r[0]))


ROUTES = _routes()


def _url(path: str) -> str:
    # an id that exists nowhere: the request is authorised or not before the id is looked up
    return re.sub(r"\{[^}]+\}", "987654", path)


def test_the_matrix_covers_the_api() -> None:
    paths = {p for _, p, _ in ROUTES}
    assert "/api/v1/sessions" in paths and len(ROUTES) >= 8


@pytest.mark.parametrize(("method", "path", "role"), ROUTES, ids=[f"{m} {p}" for m, p, _ in ROUTES])
def test_route_auth(client: TestClient, headers: dict, method: str, path: str, role: ApiRole | None) -> None:
    if PUBLIC.match(path):
        assert role is None, f"{path} is public by contract but requires {role}"
        return
    assert role is not None, f"{method} {path} has no role requirement"
    if method == "GET":
        expected = ApiRole.ADMIN if ADMIN_READS.match(path) else ApiRole.MONITOR
        assert role is expected, f"GET {path} should need {expected.label} only"
    url = _url(path)
    body = {} if method in ("POST", "PUT", "PATCH") else None
    r = client.request(method, url, json=body)
    assert r.status_code == 401, (method, path, r.status_code, r.text)
    assert r.json()["code"] == "UNAUTHORIZED"
    for name, rank in RANKS.items():
        r = client.request(method, url, json=body, headers=headers[name])
        if rank < role:
            assert r.status_code == 403, (name, method, path, r.status_code, r.text)
            assert r.json()["code"] == "FORBIDDEN"
        else:
            assert r.status_code not in (401, 403), (name, method, path, r.status_code, r.text)
            assert r.status_code < 500, (name, method, path, r.status_code, r.text)
