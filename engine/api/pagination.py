"""RustyDB's pagination (`page`, `page_size`, `sort_by`, `sort_order`), actually applied."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from ..errors import InvalidInput

T = TypeVar("T")
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50


class SortOrder(StrEnum):
    ASC = "asc"
    DESC = "desc"


class PageParams(BaseModel):
    page: int = 1
    page_size: int = DEFAULT_PAGE_SIZE
    sort_by: str | None = None
    sort_order: SortOrder = SortOrder.ASC


PageNumber = Annotated[int, Query(ge=1, le=1_000_000)]
PageSize = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]


def sort_key_enum(keys: Iterable[str]) -> Any:
    """`sort_by`'s type for these keys: an enum in the OpenAPI document, so that it is as strict as the server."""
    return Literal[tuple(sorted(keys))]  # type: ignore[valid-type]


def pages_sorted_by(keys: Iterable[str]) -> Any:
    """RustyDB's pagination parameters as a dependency, `sort_by` limited to these keys."""
    SortKey = sort_key_enum(keys)  # noqa: N806 - a type

    def page_params(page: PageNumber = 1, page_size: PageSize = DEFAULT_PAGE_SIZE,
                    sort_by: SortKey | None = None, sort_order: SortOrder = SortOrder.ASC) -> PageParams:
        return PageParams(page=page, page_size=page_size, sort_by=sort_by, sort_order=sort_order)

    # the annotation as an object: a string naming this function's local would not resolve
    page_params.__annotations__["sort_by"] = SortKey | None

    return Annotated[PageParams, Depends(page_params)]


class Paginated(BaseModel, Generic[T]):
    data: list[T]
    page: int
    page_size: int
    total_pages: int
    total_count: int
    has_next: bool
    has_prev: bool


def sort_items(items: Sequence[T], params: PageParams, keys: dict[str, Callable[[T], Any]]) -> list[T]:
    if params.sort_by is None:
        return list(items)
    key = keys.get(params.sort_by)
    if key is None:
        raise InvalidInput(f"sort_by must be one of {', '.join(sorted(keys))}", field="sort_by")
    # None sorts first ascending: wrap so mixed None/values compare
    return sorted(items, key=lambda i: (key(i) is not None, key(i) if key(i) is not None else 0),
                  reverse=params.sort_order is SortOrder.DESC)


def paginate(items: Sequence[T], params: PageParams, keys: dict[str, Callable[[T], Any]] | None = None) -> dict:
    ordered = sort_items(items, params, keys or {})
    total = len(ordered)
    pages = math.ceil(total / params.page_size) if total else 0
    start = (params.page - 1) * params.page_size
    return {"data": ordered[start:start + params.page_size], "page": params.page, "page_size": params.page_size,
            "total_pages": pages, "total_count": total, "has_next": params.page < pages,
            "has_prev": params.page > 1}
