"""Every module here that defines `router` is mounted; one module per area."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from fastapi import FastAPI


def include_all(app: FastAPI, responses: dict[int | str, dict[str, Any]]) -> None:
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        router = getattr(module, "router", None)
        if router is not None:
            app.include_router(router, responses=responses)
