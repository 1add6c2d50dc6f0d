"""Users and roles: RustyDB's admin CRUD, on the engine's real catalogue (system.db). Admin only, reads too."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from ...auth import (
    API_KEY_DESCRIPTION_MAX,
    API_KEY_PREFIX,
    API_KEY_SHOWN_CHARS,
    NAME_FORBIDDEN,
    PERMISSIONS,
    ROLE_NAME_MAX,
    USERNAME_MAX,
    USERNAME_MIN,
    ApiKeyRecord,
    RoleRecord,
    UserRecord,
    key_prefix,
)
from ..deps import Admin, EngineDep
from ..pagination import Paginated, pages_sorted_by, paginate

router = APIRouter(prefix="/api/v1/admin", tags=["users and roles"])

UserId = Annotated[int, Path(ge=1, le=2**63 - 1)]
RoleId = Annotated[int, Path(ge=1, le=2**63 - 1)]
# Loose bounds only: the service answers with RustyDB's own messages ("Username must be between 3 and 64
# characters", "Role name cannot be empty", ...), which tighter schema limits would pre-empt.
Name = Annotated[str, Field(max_length=256)]


def _name_rule(min_length: int, max_length: int) -> dict[str, object]:
    """The service's rule for a user or role name as JSON Schema, checked by the service itself (so that its
    messages are RustyDB's): not blank, this long, no control characters or line breaks."""
    allowed = f"[^{NAME_FORBIDDEN}]"
    return {"minLength": min_length, "maxLength": max_length,
            "pattern": f"^{allowed}*[^\\s{NAME_FORBIDDEN}]{allowed}*$"}


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


PERMISSION_PATTERN = f"^(?:{'|'.join(_any_case(p) for p in PERMISSIONS)})$"
_API_ROLE_DOC = "the API role this grants (monitor, operator or admin); null: no API access"


class UserRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    username: Name = Field(description="3 to 64 characters", json_schema_extra=_name_rule(USERNAME_MIN, USERNAME_MAX))
    password: str | None = Field(None, max_length=1024, json_schema_extra={"minLength": 1},
                                 description="stored as a salted scrypt hash; null on create: the user cannot log "
                                             "in; null on update: kept")
    roles: list[Name] = Field(max_length=64, description="names of existing roles (404 for one that does not "
                                                         "exist); may be empty")
    enabled: StrictBool | None = Field(None, description="null: true on create, unchanged on update; false revokes "
                                                         "the user's tokens at once")


class UserResponse(BaseModel):
    user_id: int
    username: str
    roles: list[str]
    enabled: bool
    created_at: int
    last_login: int | None
    # additions
    api_role: str | None = Field(description=_API_ROLE_DOC)
    has_password: bool

    @classmethod
    def of(cls, u: UserRecord) -> UserResponse:
        return cls(user_id=u.user_id, username=u.username, roles=list(u.roles), enabled=u.enabled,
                   created_at=u.created_at, last_login=u.last_login,
                   api_role=u.api_role.label if u.api_role else None, has_password=u.has_password)


class RoleRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role_name: Name = Field(json_schema_extra=_name_rule(1, ROLE_NAME_MAX))
    permissions: list[Annotated[str, Field(max_length=64, json_schema_extra={"pattern": PERMISSION_PATTERN})]] = Field(
        max_length=32, description="SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, EXECUTE, ALL "
                                   "(any case); ALL grants the admin API role, any other the monitor role")
    description: str | None = Field(None, max_length=1024)


class RoleResponse(BaseModel):
    role_id: int
    role_name: str
    permissions: list[str]
    description: str | None
    created_at: int
    # additions
    built_in: bool = Field(description="admin, readonly, monitor and operator are built in and cannot be changed")
    api_role: str | None = Field(description=_API_ROLE_DOC)

    @classmethod
    def of(cls, r: RoleRecord) -> RoleResponse:
        return cls(role_id=r.role_id, role_name=r.role_name, permissions=list(r.permissions),
                   description=r.description, created_at=r.created_at, built_in=r.built_in,
                   api_role=r.api_role.label if r.api_role else None)


_USER_SORT = {"user_id": lambda u: u.user_id, "username": lambda u: u.username,
              "created_at": lambda u: u.created_at, "last_login": lambda u: u.last_login}


# -- users -----------------------------------------------------------------------------------

@router.get("/users", response_model=Paginated[UserResponse])
def list_users(engine: EngineDep, _: Admin, pages: pages_sorted_by(_USER_SORT)) -> dict:
    """By user_id unless `sort_by` (user_id, username, created_at, last_login) says otherwise."""
    return paginate([UserResponse.of(u) for u in engine.auth.users()], pages, _USER_SORT)


@router.post("/users", response_model=UserResponse)
def create_user(engine: EngineDep, who: Admin, body: UserRequest) -> UserResponse:
    return UserResponse.of(engine.auth.create_user(body.username, body.password, body.roles, body.enabled,
                                                   by=who.name))


@router.get("/users/{user_id}", response_model=UserResponse)
def get_user(engine: EngineDep, _: Admin, user_id: UserId) -> UserResponse:
    return UserResponse.of(engine.auth.get_user(user_id))


@router.put("/users/{user_id}", response_model=UserResponse)
def update_user(engine: EngineDep, who: Admin, user_id: UserId, body: UserRequest) -> UserResponse:
    """RustyDB answers with an empty body; this one returns the user as it now is."""
    return UserResponse.of(engine.auth.update_user(user_id, body.username, body.password, body.roles, body.enabled,
                                                   by=who.name))


@router.delete("/users/{user_id}", status_code=204, response_class=Response)
def delete_user(engine: EngineDep, who: Admin, user_id: UserId) -> Response:
    engine.auth.delete_user(user_id, by=who.name)
    return Response(status_code=204)


# -- roles -----------------------------------------------------------------------------------

@router.get("/roles", response_model=list[RoleResponse])
def list_roles(engine: EngineDep, _: Admin) -> list[RoleResponse]:
    """A bare array by role_id, as RustyDB."""
    return [RoleResponse.of(r) for r in engine.auth.roles()]


@router.post("/roles", response_model=RoleResponse)
def create_role(engine: EngineDep, who: Admin, body: RoleRequest) -> RoleResponse:
    return RoleResponse.of(engine.auth.create_role(body.role_name, body.permissions, body.description, by=who.name))


@router.get("/roles/{role_id}", response_model=RoleResponse)
def get_role(engine: EngineDep, _: Admin, role_id: RoleId) -> RoleResponse:
    return RoleResponse.of(engine.auth.get_role(role_id))


@router.put("/roles/{role_id}", response_model=RoleResponse)
def update_role(engine: EngineDep, who: Admin, role_id: RoleId, body: RoleRequest) -> RoleResponse:
    return RoleResponse.of(engine.auth.update_role(role_id, body.role_name, body.permissions, body.description,
                                                   by=who.name))


@router.delete("/roles/{role_id}", status_code=204, response_class=Response)
def delete_role(engine: EngineDep, who: Admin, role_id: RoleId) -> Response:
    engine.auth.delete_role(role_id, by=who.name)
    return Response(status_code=204)


# -- API keys --------------------------------------------------------------------------------

KeyRef = Annotated[str, Path(pattern=rf"^({API_KEY_PREFIX}[A-Za-z0-9_-]{{{API_KEY_SHOWN_CHARS}}}|[1-9][0-9]{{0,17}})$",
                             description="the key's prefix as listed, or its key_id")]


class ApiKeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["monitor", "operator", "admin"]
    description: str | None = Field(None, max_length=API_KEY_DESCRIPTION_MAX,
                                    json_schema_extra={"pattern": f"^[^{NAME_FORBIDDEN}]*$"})


class ApiKeyResponse(BaseModel):
    key_id: int
    prefix: str | None = Field(description="the key's first characters, enough to tell keys apart; null for a key "
                                           "made before prefixes were kept")
    role: str
    description: str | None
    created_at: int
    last_used: int | None = Field(description="Unix seconds, recorded at most once a minute per key")

    @classmethod
    def of(cls, k: ApiKeyRecord) -> ApiKeyResponse:
        return cls(key_id=k.key_id, prefix=k.prefix, role=k.role.label, description=k.description,
                   created_at=k.created_at, last_used=k.last_used)


class NewApiKey(ApiKeyResponse):
    key: str = Field(description="the key itself, shown this once: only its hash is kept")


@router.get("/api-keys", response_model=list[ApiKeyResponse], tags=["api keys"])
def list_api_keys(engine: EngineDep, _: Admin) -> list[ApiKeyResponse]:
    """Every key by key_id (a bare array, like roles); never the keys themselves."""
    return [ApiKeyResponse.of(k) for k in engine.auth.api_keys()]


@router.post("/api-keys", response_model=NewApiKey, status_code=201, tags=["api keys"])
def create_api_key(engine: EngineDep, who: Admin, body: ApiKeyRequest) -> NewApiKey:
    key = engine.auth.create_api_key(body.role, body.description, by=who.name)
    made = next(k for k in engine.auth.api_keys() if k.prefix == key_prefix(key))
    return NewApiKey(**ApiKeyResponse.of(made).model_dump(), key=key)


@router.delete("/api-keys/{key}", status_code=204, response_class=Response, tags=["api keys"])
def revoke_api_key(engine: EngineDep, who: Admin, key: KeyRef) -> Response:
    """The key is refused from the next request on."""
    engine.auth.revoke_api_key(key, by=who.name)
    return Response(status_code=204)
