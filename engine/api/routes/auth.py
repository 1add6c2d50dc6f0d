"""Login, logout, refresh and validate: RustyDB's shapes, real users and tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from ...auth import Unauthorized
from ..deps import EngineDep, client_address
from ..models import Message

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _bearer(request: Request) -> str | None:
    """The token, if any: these routes work without one, so none is declared as required."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: str = Field(min_length=1, max_length=256)
    password: str = Field(min_length=1, max_length=1024)
    remember_me: bool = False


class RoleOut(BaseModel):
    id: str
    name: str
    permissions: list[str]


class UserOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    id: str
    username: str
    display_name: str = Field(serialization_alias="displayName")
    email: str | None = None
    roles: list[RoleOut]


class SessionOut(BaseModel):
    model_config = ConfigDict(populate_by_name=True)
    token: str
    refresh_token: str = Field(serialization_alias="refreshToken")
    expires_at: str = Field(serialization_alias="expiresAt", description="Unix seconds, as a string (RustyDB)")


class LoginData(BaseModel):
    user: UserOut
    session: SessionOut


class LoginResponse(BaseModel):
    success: bool
    data: LoginData


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    refresh_token: str | None = Field(default=None, max_length=512,
                                      description="or send it as the bearer token (RustyDB's refresh has no body)")


class Validity(BaseModel):
    valid: bool
    username: str | None = None
    role: str | None = None


@router.post("/login", response_model=LoginResponse, response_model_by_alias=True)
def login(engine: EngineDep, body: LoginRequest, request: Request) -> LoginResponse:
    """Failed logins slow further attempts per user and per address (429 with Retry-After): see the README."""
    issued = engine.auth.login(body.username, body.password, client_address(request, engine.config.trusted_proxies))
    user = engine.auth.user(body.username)
    role = issued.principal.role.label
    return LoginResponse(success=True, data=LoginData(
        user=UserOut(id=str(user["user_id"]), username=body.username, display_name=body.username,
                     roles=[RoleOut(id=role, name=role, permissions=["*"] if role == "admin" else [])]),
        session=SessionOut(token=issued.token, refresh_token=issued.refresh_token,
                           expires_at=str(int(issued.expires_at)))))


@router.post("/logout", response_model=Message)
def logout(engine: EngineDep, request: Request) -> Message:
    token = _bearer(request)
    if token is not None:
        engine.auth.logout(token)
    return Message(message="Logged out successfully")


@router.post("/refresh", response_model=SessionOut, response_model_by_alias=True)
def refresh(engine: EngineDep, request: Request, body: RefreshRequest | None = None) -> SessionOut:
    """A new pair for the refresh token (an access token is refused), up to refresh_max_age_secs after the login."""
    refresh_token = (body.refresh_token if body else None) or _bearer(request)
    if refresh_token is None:
        raise Unauthorized("Invalid or expired refresh token")
    issued = engine.auth.refresh(refresh_token)
    return SessionOut(token=issued.token, refresh_token=issued.refresh_token, expires_at=str(int(issued.expires_at)))


@router.get("/validate", response_model=Validity)
def validate(engine: EngineDep, request: Request) -> Validity:
    """Whether the caller's credentials work, and as whom: a login token, or an API key (in
    X-API-Key or as a bearer), so a client can learn its role before it offers actions."""
    try:
        p = engine.auth.authenticate(_bearer(request), request.headers.get("x-api-key"))
    except Unauthorized:
        return Validity(valid=False)
    return Validity(valid=True, username=p.name, role=p.role.label)
