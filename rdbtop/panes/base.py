"""What every pane shares: the view settings it draws with, the note for an area the server
does not serve, and the selection that actions act on."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.widget import AwaitMount
from textual.containers import Vertical
from textual.widgets import Static

from ..model import Session, Snapshot
from ..safe import safe_text
from ..themes import Palette
from ..widgets.line import Line
from ..widgets.table import Column, KeyedTable
from .sorting import SortOrder

HISTORY_POINTS = 300


def _series() -> deque[float | None]:
    return deque(maxlen=HISTORY_POINTS)


@dataclass
class History:
    """The overview's series, one point per poll at `times`; None where the server did not say."""

    times: deque[float] = field(default_factory=lambda: deque(maxlen=HISTORY_POINTS))
    statements: deque[float | None] = field(default_factory=_series)
    active: deque[float | None] = field(default_factory=_series)
    waiting: deque[float | None] = field(default_factory=_series)
    cache_hit: deque[float | None] = field(default_factory=_series)
    cpu: deque[float | None] = field(default_factory=_series)
    points: int = 0  # points ever added: a plot is built again only when it grows

    def add(self, snap: Snapshot) -> None:
        o = snap.overview
        by_state = o.sessions_by_state
        self.times.append(snap.taken_at)
        self.statements.append(o.statements_per_second)
        # an empty count means the server did not say; a state missing from a count means none in it
        self.active.append(float(by_state.get("active", 0)) if by_state else None)
        self.waiting.append(float(by_state.get("waiting", 0)) if by_state else None)
        self.cache_hit.append(None if o.cache_hit_ratio is None else o.cache_hit_ratio * 100)
        self.cpu.append(o.cpu_percent)
        self.points += 1


@dataclass(frozen=True)
class Filter:
    """`/` filter: words match anywhere; user:, state:, app: match that field (all must match)."""

    text: str = ""

    def _terms(self) -> list[tuple[str | None, str]]:
        out: list[tuple[str | None, str]] = []
        for word in self.text.lower().split():
            name, sep, value = word.partition(":")
            out.append((name, value) if sep and name in ("user", "state", "app") else (None, word))
        return out

    def matches(self, fields: dict[str, object]) -> bool:
        values = {k: ("" if v is None else str(v)).lower() for k, v in fields.items()}
        everything = " ".join(values.values())
        for name, value in self._terms():
            if name is None and value not in everything:
                return False
            if name is not None and value not in values.get(name, ""):
                return False
        return True

    def session(self, s: Session) -> bool:
        return self.matches({"id": s.session_id, "user": s.username, "app": s.application, "state": s.state,
                             "client": s.client, "sql": s.sql, "wait": s.wait_event})


@dataclass
class View:
    now: float
    palette: Palette
    filter: Filter = Filter()
    hide_idle: bool = False
    sort: int = 0
    reverse: bool = False  # the sort order reversed (`S`, or a second click on its header)
    ash_window: int = 900
    history: History = field(default_factory=History)
    backup_max_age_seconds: float = 26 * 3600
    kiosk: bool = False
    actions: bool = True  # the action keys work here (not read-only, watch, or a monitor role)


@dataclass(frozen=True)
class SessionTarget:
    """A session as the screen showed it when an action was asked for."""

    session_id: int
    username: str | None
    query_id: str | None
    sql: str | None
    created_at: int | None


class Pane(Vertical):
    """A pane shows one area of the snapshot; `note` replaces it when the server does not serve it."""

    DEFAULT_CSS = """
    Pane { height: 1fr; }
    Pane > .note { display: none; color: $text-muted; padding: 1 2; }
    Pane.unserved > .note { display: block; }
    Pane.unserved > .body { display: none; }
    Pane .caption { height: 1; }
    Pane > .problem { display: none; height: auto; max-height: 2; color: $error; }
    Pane.failing > .problem { display: block; }
    """
    area: ClassVar[str] = ""
    title: ClassVar[str] = ""
    key: ClassVar[str] = ""
    sorts: ClassVar[tuple[str, ...]] = ()
    orders: ClassVar[tuple[SortOrder[Any], ...]] = ()  # sorts, with the column each belongs to

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._mounting: list[AwaitMount] = []
        self.built = False  # its body is mounted: it can be drawn

    def compose(self) -> ComposeResult:
        yield Vertical(classes="body")  # filled by build(), when the pane is first shown

    def compose_body(self) -> ComposeResult:
        yield from ()

    async def build(self) -> None:
        """Mount the pane's widgets the first time it is shown. Only the visible pane is built at
        start: the console starts with a third of the widgets, and Textual's every pass over the
        screen (each frame, each Pilot pause) costs in proportion to them."""
        if not self._mounting:
            body = self.query_one(".body", Vertical)
            self._mounting = [self.mount(Static(classes="note"), Static(classes="problem"), before=body),
                              body.mount_compose(self.compose_body())]
        for mounting in self._mounting:
            await mounting
        self.built = True

    def show(self, snap: Snapshot, view: View) -> None:
        if not self.built:
            return  # drawn once build() is done (the pane switch awaits it, then draws)
        missing = snap.missing.get(self.area)
        self.set_class(missing is not None, "unserved")
        if missing is not None:
            self.query_one(".note", Static).update(safe_text(f"{self.title}: {missing}. The pane is hidden.", 200))
            return
        problem = snap.errors.get(self.area)
        self.set_class(problem is not None, "failing")
        if problem is not None:
            self.query_one(".problem", Static).update(
                safe_text(f"Could not read all of this pane: {problem}", 2 * (self.size.width or 100)))
        self.draw(snap, view)

    def draw(self, snap: Snapshot, view: View) -> None:
        raise NotImplementedError

    def set_caption(self, text: str) -> None:
        self.query_one(".caption", Line).show(safe_text(text, self.size.width or 200, style="dim"))

    def target(self, snap: Snapshot) -> SessionTarget | None:
        """The session under the cursor, for cancel, terminate and `g`."""
        return None


class TablePane(Pane):
    """A caption line over one table of `columns`."""

    columns: ClassVar[list[Column]] = []

    def compose_body(self) -> ComposeResult:
        yield Line(classes="caption")
        yield KeyedTable(self.columns, id=f"{self.key}-table")


def session_target(snap: Snapshot, session_id: int | None) -> SessionTarget | None:
    if session_id is None:
        return None
    s = next((s for s in snap.sessions if s.session_id == session_id), None)
    if s is None:
        return SessionTarget(session_id, None, None, None, None)
    return SessionTarget(s.session_id, s.username, s.query_id, s.sql, s.created_at)
