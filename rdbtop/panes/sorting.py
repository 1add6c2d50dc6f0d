"""Sort orders of a table pane: one per column (a header click or `s` chooses it, `S` reverses it)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class SortOrder(Generic[T]):
    name: str  # as the caption and the notice say it
    column: str | None  # the column whose header chooses it
    key: Callable[[T], Any]  # None: no value (shown as "–"), always listed last
    descending: bool = False  # the first direction: largest (longest, most) first for figures

    def arrow(self, reverse: bool) -> str:
        return "▼" if self.descending != reverse else "▲"


def sort_rows(items: Sequence[T], order: SortOrder[T], reverse: bool, tiebreak: Callable[[T], Any]) -> list[T]:
    """Items in `order`; rows with equal values keep one order from poll to poll (by `tiebreak`), so a
    table is not reordered and drawn again every tick; rows without a value go last either way."""
    keyed = sorted(((order.key(item), item) for item in items), key=lambda ki: tiebreak(ki[1]))
    known = [(k, item) for k, item in keyed if k is not None]
    known.sort(key=lambda ki: ki[0], reverse=order.descending != reverse)  # stable: ties stay by tiebreak
    return [item for _, item in known] + [item for k, item in keyed if k is None]


def text_key(value: str | None) -> str | None:
    return None if value is None else value.casefold()


def sort_caption(orders: Sequence[SortOrder[Any]], view: Any) -> str:
    """"cpu ▼": the order a pane's view asks for; the first order (the pane's own) without an arrow
    until it is reversed."""
    index = view.sort % len(orders)
    order = orders[index]
    if index == 0 and not view.reverse:
        return order.name
    return f"{order.name} {order.arrow(view.reverse)}"


def order_for_column(orders: Sequence[SortOrder[Any]], column: str) -> int | None:
    return next((i for i, o in enumerate(orders) if o.column == column), None)
