"""Server information and the effective configuration (RustyDB's /server/info and /config)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ... import about
from ...engine import VERSION
from ..deps import EngineDep, Monitor

router = APIRouter(prefix="/api/v1", tags=["server"])

SettingValue = bool | int | float | str
RUST_VERSION = Field(None, description="always null: this engine is not written in Rust")


class SystemInfo(BaseModel):
    os: str
    arch: str
    cpu_cores: int
    hostname: str


class ServerInfoResponse(BaseModel):
    server_name: str
    version: str
    build_date: str | None = Field(description="null: the build date is not recorded")
    build_target: str = Field(description="{arch}-{os}")
    rust_version: None = RUST_VERSION
    git_commit: str | None = Field(description="null: the commit is not recorded")
    uptime_seconds: int
    started_at: int
    pid: int
    system_info: SystemInfo
    features: list[str]
    license: str
    # additions
    sqlite_version: str
    apsw_version: str
    python_version: str
    data_directory: str


class SettingMeta(BaseModel):
    source: str = Field(description="config (changeable), sqlite (read from the database) or fixed (set in code)")
    unit: str
    min: int | float | None
    max: int | float | None
    live: bool = Field(description="a change applies without a restart")
    choices: list[str]
    default: SettingValue | None
    doc: str


class ServerConfigResponse(BaseModel):
    settings: dict[str, SettingValue]
    version: str
    build_date: str | None
    rust_version: None = RUST_VERSION
    features: list[str]
    # additions
    settings_meta: dict[str, SettingMeta]


@router.get("/server/info", response_model=ServerInfoResponse)
def server_info(engine: EngineDep, _: Monitor) -> ServerInfoResponse:
    info = about.server_info(engine)
    s = info.system_info
    return ServerInfoResponse(
        server_name=info.server_name, version=info.version, build_date=info.build_date,
        build_target=info.build_target, git_commit=info.git_commit, uptime_seconds=int(info.uptime_seconds),
        started_at=int(info.started_at), pid=info.pid,
        system_info=SystemInfo(os=s.os, arch=s.arch, cpu_cores=s.cpu_cores, hostname=s.hostname),
        features=info.features, license=info.license, sqlite_version=info.sqlite_version,
        apsw_version=info.apsw_version, python_version=info.python_version, data_directory=info.data_directory)


@router.get("/config", response_model=ServerConfigResponse)
def server_config(engine: EngineDep, _: Monitor) -> ServerConfigResponse:
    view = about.config_view(engine)
    return ServerConfigResponse(
        settings={s.name: s.value for s in view.settings}, version=VERSION, build_date=about.BUILD_DATE,
        features=view.features,
        settings_meta={s.name: SettingMeta(source=s.source, unit=s.unit, min=s.min, max=s.max, live=s.live,
                                           choices=list(s.choices), default=s.default, doc=s.doc)
                       for s in view.settings})
