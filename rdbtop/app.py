"""The console: panes on a tab bar, one polling worker, global keys, and the actions behind them."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.notifications import Notification, SeverityLevel
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from .actions import Actions
from .client import ClientError, CredentialsRefused, RdbClient
from .config import Settings, user_themes_dir
from .format import duration, victim_note
from .model import ActiveQuery, Session, Snapshot
from .panes import PANES
from .panes.base import Filter, History, Pane, SessionTarget, View, session_target
from .panes.sessions import SessionsPane
from .panes.sorting import order_for_column
from .poller import ASH_WINDOWS, MAX_BACKOFF, Poller, SessionsWanted
from .safe import safe_text
from .screens.detail import DetailScreen
from .screens.filter import FilterScreen
from .screens.help import HelpScreen
from .sources import Source
from .themes import (
    DEFAULT_THEME,
    MONOCHROME_THEME,
    SHIPPED,
    VARIABLE_DEFAULTS,
    Palette,
    load_themes,
)
from .widgets.banner import Banner
from .widgets.line import Line, Part, fit
from .widgets.table import KeyedTable

MUTATING = {"cancel_query", "terminate", "acknowledge", "silence", "maintenance", "backup"}
MAX_TOASTS = 3  # on screen at once, so that they never climb over the status line
NARROW_FOOTER = 100  # columns below which the footer packs its keys
PROMPTING = {"filter"} | MUTATING
SESSION_PANES = {"sessions", "queries", "locks"}
# what each key does, for the help screen (the footer shows the short descriptions)
KEY_HELP = [
    ("1-7", "switch pane: overview, sessions, queries, locks, ASH, alerts, backups (or click the tab bar)"),
    ("↑ ↓ PgUp PgDn", "move the selection"), ("Enter", "a statement's details: full SQL, plan, fingerprint statistics"),
    ("/", "filter sessions and queries: text, user:NAME, state:NAME, app:NAME"),
    ("s / S", "sort by the next column / reverse the order (or click a column's header)"),
    ("i", "hide or show idle sessions"),
    ("g", "on a waiting session: jump to its root blocker"), ("w", "ASH: window 5, 15 or 60 minutes"),
    ("space", "pause the display (polling goes on)"), ("+ / -", "refresh less / more often"),
    ("r", "refresh now"), ("t", "next theme"), ("ctrl+p", "command palette"), ("?", "this help"), ("q", "quit"),
]
KEY_HELP_MUTATING = [
    ("k", "cancel the selected session's statement (asks first)"),
    ("K", "terminate the selected session (asks first)"),
    ("a", "alerts: acknowledge the selected alert, with an optional note (asks first)"),
    ("z", "alerts: silence (snooze) the selected alert, or every alert of its rule, for a while"),
    ("m", "maintenance: vacuum, analyze, reindex or checkpoint, on a target (asks first)"),
    ("b", "start a full backup (asks first)"),
]


class RdbTop(App[int]):
    TITLE = "rdbtop"
    CSS = """
    Screen { layout: vertical; }
    #status { height: 1; background: $panel; color: $text; padding: 0 1; }
    TabbedContent { height: 1fr; }
    TabPane { padding: 0; }
    .stale KeyedTable, .stale Static, .stale LinePlot { text-opacity: 55%; }
    Screen.kiosk Footer { display: none; }
    Screen.mono KeyedTable > .datatable--cursor { text-style: bold reverse; }
    """
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("question_mark", "help", "Help"),
        Binding("slash", "filter", "Filter"),
        Binding("k", "cancel_query", "Cancel"),
        Binding("K", "terminate", "Terminate"),
        Binding("g", "root_blocker", "Root blocker"),
        Binding("a", "acknowledge", "Ack"),
        Binding("z", "silence", "Silence"),
        Binding("w", "ash_window", "Window"),
        Binding("space", "pause", "Pause"),
        Binding("s", "sort", "Sort", show=False),
        Binding("S", "reverse_sort", "Reverse", show=False),
        Binding("i", "hide_idle", "Idle", show=False),
        Binding("plus", "slower", "Slower", show=False),
        Binding("minus", "faster", "Faster", show=False),
        Binding("r", "refresh_now", "Refresh", show=False),
        Binding("t", "next_theme", "Theme", show=False),
        Binding("m", "maintenance", "Maint.", show=False),
        Binding("b", "backup", "Backup", show=False),
        *(Binding(str(i), f"pane('{pane.key}')", pane.title, show=False) for i, pane in enumerate(PANES, 1)),
    ]
    # the console's own actions and the palette: none runs while a dialog is open (Textual's focus
    # actions, Tab in a dialog, are not among them)
    CONSOLE_ACTIONS = frozenset(b.action.partition("(")[0] for b in BINDINGS) | {"command_palette"}

    def __init__(self, settings: Settings, source: Source, clock: Callable[[], float] = time.time) -> None:
        monochrome = "NO_COLOR" in os.environ
        # With native ANSI colours Textual answers NO_COLOR with no colour codes at all; otherwise it
        # maps every colour to a grey, which turns the terminal's default colours into black on black.
        super().__init__(ansi_color=monochrome)
        # no sliding tab underline: over SSH every animation frame is bytes and time
        self.animation_level = "none"
        self.settings = settings
        self.source = source
        self.clock = clock
        self.monochrome = monochrome
        themes, self.theme_problems = load_themes(SHIPPED, user_themes_dir())
        for theme in themes:
            self.register_theme(theme)
        self.theme_names = [MONOCHROME_THEME, "ansi-light"] if self.monochrome else [t.name for t in themes]
        wanted = settings.theme or (MONOCHROME_THEME if self.monochrome else DEFAULT_THEME)
        self.theme = wanted if wanted in self.available_themes else DEFAULT_THEME
        self.client: RdbClient | None = None
        self.poller: Poller | None = None
        self.latest: Snapshot | None = None  # what the last poll brought
        self.shown: Snapshot | None = None  # what the screen shows (older while paused)
        self.history = History()
        self.filter = Filter()
        self.hide_idle = False
        self.paused = False
        self.sorts: dict[str, int] = {}
        self.sorts_reversed: dict[str, bool] = {}
        self.ash_window = ASH_WINDOWS[1]
        self.interval = settings.interval
        self.role: str | None = None  # the caller's role, when the server says
        self.role_asked = False  # the server was asked for it (it may not tell)
        self.refused: CredentialsRefused | None = None  # the server refuses our credentials: not polling
        self.down_since: float | None = None
        self.down_reason = ""
        self.retry_in = 0.0
        self.actions = Actions(self)
        self._root_wanted: int | None = None  # `g` switched to the Sessions pane: select this once it is drawn
        self._toasts: dict[str, Notification] = {}  # the latest notice of each kind

    # -- layout ----------------------------------------------------------------------------

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(VARIABLE_DEFAULTS)

    def compose(self) -> ComposeResult:
        # kept as attributes: App.query_one looks in the top screen, which may be a dialog
        self.status = Line(id="status")
        self.banner = Banner(id="banner")
        self.tabs = TabbedContent(id="panes", initial="overview")
        self.panes = {pane.key: pane(id=f"pane-{pane.key}") for pane in PANES}
        yield self.status
        yield self.banner
        with self.tabs:
            for i, pane in enumerate(PANES, 1):
                with TabPane(f"{i} {pane.title}", id=pane.key):
                    yield self.panes[pane.key]
        self.footer = Footer()
        yield self.footer

    async def on_mount(self) -> None:
        self.refresh_css(animate=False)  # a theme named by TEXTUAL_THEME would otherwise keep default colours
        if self.monochrome:
            self.screen.add_class("mono")  # without colours the selected row needs reverse video to show
        if self.settings.watch:
            self.screen.add_class("kiosk")
            self.panes["overview"].add_class("kiosk")
            if self.settings.rotate:
                self.set_interval(self.settings.rotate, self.action_next_pane)
        for problem in self.theme_problems:
            self.notify(safe_text(problem, 200).plain, title="theme not loaded", severity="warning")
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.set_interval(1.0, self._tick)
        self._update_status()
        self.poll()
        await self.pane.build()
        self.draw()  # a poll may have come in while it was built

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        # Textual's own theme command offers its every built-in theme; ours offers those `t` cycles
        yield from (c for c in super().get_system_commands(screen) if c.callback != self.action_change_theme)
        for name in self.theme_names:
            yield SystemCommand(f"Theme: {name}", "one of the themes t cycles through", partial(self._use_theme, name))
        for i, pane in enumerate(PANES, 1):
            yield SystemCommand(f"Pane: {pane.title}", f"show the {pane.title} pane (key {i})",
                                partial(self.action_pane, pane.key))
        yield SystemCommand("Pause or resume", "freeze the display; polling goes on", self.action_pause)

    @property
    def pane(self) -> Pane:
        return self.panes[self.tabs.active]

    def pane_of(self, kind: type[Pane]) -> Any:
        return self.panes[kind.key]

    def view(self) -> View:
        variables = self.current_theme.variables if self.current_theme else {}
        return View(now=self.clock(), palette=Palette.of(variables, self.monochrome), filter=self.filter,
                    hide_idle=self.hide_idle, sort=self.sorts.get(self.pane.key, 0),
                    reverse=self.sorts_reversed.get(self.pane.key, False), ash_window=self.ash_window,
                    history=self.history, backup_max_age_seconds=self.settings.backup_max_age_hours * 3600,
                    kiosk=self.settings.watch, actions=self.mutations_allowed)

    def draw(self) -> None:
        # a paused display is frozen as it is, whatever it was read for
        if self.shown is not None and (self.paused or self.read_for(self.tabs.active)):
            self.pane.show(self.shown, self.view())
        if self._root_wanted is not None and self.tabs.active == SessionsPane.key and self.read_for(SessionsPane.key):
            root, self._root_wanted = self._root_wanted, None
            self.call_after_refresh(self._select_root, root)  # once the table has its size and rows


    @property
    def mutations_allowed(self) -> bool:
        return self.settings.mutations_allowed and self.role != "monitor"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self.CONSOLE_ACTIONS and (self.actions.asking or len(self.screen_stack) > 1):
            return False  # a dialog is open, or about to be: a key typed there is never a console key
        if action in MUTATING and not self.mutations_allowed:
            return False  # hidden and inert: read-only and watch mode have no actions at all
        if action in PROMPTING and self.settings.watch:
            return False
        if not hasattr(self, "tabs") or not self.tabs.is_mounted:
            return True
        active = self.tabs.active
        if action in ("cancel_query", "terminate", "root_blocker"):
            return active in SESSION_PANES
        if action in ("acknowledge", "silence"):
            return active == "alerts"
        if action == "ash_window":
            return active == "ash"
        return True

    def on_key(self, event: events.Key) -> None:
        """A key typed just after the one that opened a dialog, still on its way through the
        console's table when the dialog came up, is the dialog's: it is handed on, so that text
        typed at once lands in its field. An action key that does nothing here (read-only, watch,
        a monitor role) says why."""
        if len(self.screen_stack) > 1:
            handed_on = getattr(event, "handed_on", False)
            if event.is_printable and not handed_on and getattr(self.screen, "takes_text", False):
                event.stop()
                key = events.Key(event.key, event.character)
                key.handed_on = True  # type: ignore[attr-defined]  # should it come back here, it stays
                self.screen.post_message(key)
            return
        binding = next((b for b in self.BINDINGS if isinstance(b, Binding) and b.key == event.key), None)
        if binding is None or self.actions.asking:
            return
        if binding.action in MUTATING and not self.mutations_allowed or \
                binding.action in PROMPTING and self.settings.watch:
            why = "watch mode is a read-only kiosk" if self.settings.watch else \
                "the console runs read-only (--read-only)" if self.settings.read_only else \
                "the server gives this login the monitor role, which may only read"
            self.notify(f"{binding.key}: {binding.description} is off: {why}.", kind="off")

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False, kind: str | None = None) -> None:
        """A notice: plain text (a server's message is never markup); a newer one of the same kind
        (its title, else its text) replaces the one on screen, and the oldest go while more than
        MAX_TOASTS show or they would climb over the tab bar and the status line."""
        kind = kind or title or message
        old = self._toasts.pop(kind, None)
        if old is not None:
            self._drop_toast(old)
        notification = Notification(message, title, severity,
                                    self.NOTIFICATION_TIMEOUT if timeout is None else timeout, markup=markup)
        self._toasts = {k: n for k, n in self._toasts.items() if n in self._notifications}  # not expired, not clicked
        self._toasts[kind] = notification
        room = self.size.height - 4  # status line, tab bar and its rule, footer
        while len(self._toasts) > 1 and (len(self._toasts) > MAX_TOASTS or
                                         sum(map(self._toast_height, self._toasts.values())) > room):
            self._drop_toast(self._toasts.pop(next(iter(self._toasts))))
        # added at once, as Textual's own Notify handler does, so that the next notice counts it
        self._notifications.add(notification)
        self._refresh_notifications()

    def _drop_toast(self, notification: Notification) -> None:
        self._unnotify(notification, refresh=False)
        # Textual then removes the toast but not the holder around it, which leaves a gap in the rack
        # (ToastRack names each holder after its notification)
        for holder in self.screen.query(f"#--textual-toast-{notification.identity}"):
            holder.remove()

    def _toast_height(self, notification: Notification) -> int:
        """Rows a toast takes: its wrapped text and title, padding above and below, a margin."""
        width = max(10, min(60, self.size.width // 2) - 4)  # Textual's toast: 60 wide, at most half the screen
        lines = sum(max(1, -(-len(line) // width)) for line in notification.message.split("\n"))
        return lines + bool(notification.title) + 3

    # -- polling ---------------------------------------------------------------------------

    @work(exclusive=True, group="poll")
    async def poll(self) -> None:
        failures = 0
        while self.client is None:
            try:
                self.client = await self.source.open()
            except CredentialsRefused as exc:  # a login refused: trying it again changes nothing
                self.failed(exc, None)
                return
            except Exception as exc:  # any other start-up failure (engine, network) is shown, then retried
                failures += 1
                delay = min(MAX_BACKOFF, self.interval * 2 ** min(failures - 1, 6))
                reason = str(exc) if isinstance(exc, ClientError) else f"{type(exc).__name__}: {exc}"
                self.failed(ClientError(reason), delay)
                await asyncio.sleep(delay)
        self.poller = Poller(self.client, self.interval, self.clock)
        self.poller.ash_window = self.ash_window
        self._tell_poller()
        # a login's role is asked for alongside the first poll, not before it (the server checks
        # every action anyway); the action keys follow when it is known
        role = asyncio.ensure_future(self._learn_role())
        try:
            await self.poller.run(self.deliver, self.failed)
        finally:
            role.cancel()

    async def _learn_role(self) -> None:
        self.role = await self.actions.role()
        self.role_asked = True
        self.refresh_bindings()
        self._update_status()

    @staticmethod
    def _freeze_startup_objects() -> None:
        """Exclude what exists once the console runs (modules, widgets, the app: some 130,000 objects
        that live as long as it does) from the collector's full passes. Measured at 1,000 sessions,
        those passes took a fifth of the console's CPU; the garbage is collected once, first."""
        gc.collect()
        gc.freeze()

    def _tell_poller(self) -> None:
        """Say what the screen shows, so that the next poll reads that and no more."""
        if self.poller is None:
            return
        self.poller.pane = self.tabs.active
        sorts = SessionsPane.sorts
        self.poller.sessions_wanted = SessionsWanted(sorts[self.sorts.get(SessionsPane.key, 0) % len(sorts)],
                                                     self.sorts_reversed.get(SessionsPane.key, False),
                                                     self.hide_idle, bool(self.filter.text))

    def _sessions_view_changed(self) -> None:
        """Sort, idle hiding or the filter changed: the sessions to read change with them."""
        self._tell_poller()
        if self.poller is not None and self.tabs.active == SessionsPane.key:
            self.poller.poll_now()

    def read_for(self, pane: str) -> bool:
        """Whether the snapshot on screen was read for `pane`, not carried over from another pane's poll."""
        return self.shown is not None and self.shown.pane in (None, pane)

    def deliver(self, snap: Snapshot) -> None:
        if not self.is_running:
            return  # a poll that finished while the app shuts down: its widgets are going away
        if self.latest is None:
            self.source.data_shown()
            self.call_after_refresh(self._freeze_startup_objects)  # after the first frame is painted
        self.latest = snap
        self.history.add(snap)
        if self.down_since is not None:
            self.notify(f"The server answers again after {duration(self.clock() - self.down_since)}.",
                        title="reconnected")
            self.down_since = None
            self.banner.hide()
            self.tabs.remove_class("stale")
        if not self.paused:
            self.shown = snap
            self.draw()
        self._update_status()

    def failed(self, exc: ClientError, retry_in: float | None) -> None:
        """The server did not answer (retried in `retry_in` s), or refused our credentials (None: not retried)."""
        if not self.is_running:
            return
        if isinstance(exc, CredentialsRefused):
            self.refused = exc
            self.tabs.add_class("stale")
            self.banner.show_refused(str(exc), self.latest.taken_at if self.latest else None)
            self._update_status()
            return
        if self.down_since is None:
            self.down_since = self.clock()
            self.tabs.add_class("stale")
        self.down_reason = str(exc)
        self.retry_in = retry_in or 0.0
        self._show_banner()
        self._update_status()

    def _show_banner(self) -> None:
        if self.down_since is not None:
            self.banner.show_down(self.down_since, self.down_reason, self.retry_in,
                                             self.latest.taken_at if self.latest else None, self.clock())

    def _tick(self) -> None:
        self._show_banner()
        self._update_status()

    def _mode(self) -> tuple[str, str]:
        """What the console may do, long and short; "actions on" only once the server named a role
        that has them."""
        if self.settings.watch:
            return "WATCH", "WATCH"
        if self.settings.read_only:
            return "READ-ONLY", "READ-ONLY"
        if self.refused is not None:
            return "credentials refused", "REFUSED"
        if not self.role_asked:
            return "role: asking…", "role?"
        if self.role == "monitor":
            return "READ-ONLY (monitor role)", "monitor: RO"
        if self.role is None:  # the server does not say (RustyDB with an API key): it checks each action
            return "role not told", "role?"
        return f"{self.role}: actions on", self.role

    def _update_status(self) -> None:
        """Source, role, PAUSED or stale, and the age of the data on screen stay at every width;
        the name and the refresh interval go first."""
        now = self.clock()
        shown = self.shown if self.shown is not None else self.latest
        stale = self.down_since is not None or self.refused is not None
        if shown is None:
            data = Part(Text("no data yet" if stale else "connecting…"))
        else:
            at = time.strftime('%H:%M:%S', time.localtime(shown.taken_at))
            if self.paused or stale:  # frozen: how old it is matters more than when
                old = duration(now - shown.taken_at)
                data = Part(Text(f"{'STALE: ' if stale else ''}data from {at}, {old} old",
                                 style="bold" if stale else ""),
                            Text(f"{'STALE ' if stale else ''}{at} ({old} old)", style="bold" if stale else ""))
            else:
                data = Part(Text(at))
        mode, short_mode = self._mode()
        parts = [Part(Text("rdbtop", style="bold"), drop=4),
                 Part(safe_text(self.source.label, 40), safe_text(self.source.label, 18)),
                 Part(Text(mode), Text(short_mode)),
                 Part(Text(f"every {self.interval:g}s"), drop=3),
                 data]
        if self.paused:
            parts.append(Part(Text("PAUSED (space resumes)", style="bold reverse"),
                              Text("PAUSED", style="bold reverse")))
        self.status.show(fit(parts, (self.status.content_size.width or self.size.width - 2)))

    def on_resize(self, event: events.Resize) -> None:
        # Below 100 columns the footer's keys fit only packed and without the palette's own key
        # (ctrl+p still opens it; the help screen lists it): else the last one is cut mid-word.
        narrow = event.size.width < NARROW_FOOTER
        self.footer.compact = narrow
        self.footer.show_command_palette = not narrow
        self._update_status()

    # -- navigation and view keys ------------------------------------------------------------

    def action_pane(self, key: str) -> None:
        self.tabs.active = key

    def _winding_down(self) -> bool:
        # --rotate's timer may fire, and the switch it made be handled, while the app closes
        return not (self.is_running and self.screen_stack)

    def action_next_pane(self) -> None:
        if self._winding_down():
            return
        keys = [p.key for p in PANES]
        self.tabs.active = keys[(keys.index(self.tabs.active) + 1) % len(keys)]

    async def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if self._winding_down():
            return
        self._tell_poller()
        if not (self.paused or self.read_for(self.tabs.active)) and self.poller is not None:
            self.poller.poll_now()  # this pane's data was not read for it: read it now; deliver() draws it
        pane = self.pane
        # Focus left in the pane now hidden (moved to its next widget while this one is built, or
        # kept there when this one has no table to take it) would make TabbedContent, which follows
        # focus, switch back to that pane: --rotate bounced between the Locks and ASH panes.
        if self.focused is not None and any(p is not pane for p in self.focused.ancestors if isinstance(p, Pane)):
            self.set_focus(None)
        await pane.build()
        if pane is not self.pane:
            return  # another switch came while it was built
        self.call_after_refresh(self.draw)
        tables = self.pane.query(KeyedTable)
        if tables and not self.settings.watch:  # a kiosk takes no keys; focus would only tug at the tabs
            tables.first().focus()  # arrows move the selection at once, without a Tab first
        self.refresh_bindings()

    def action_help(self) -> None:
        keys = ([] if not self.mutations_allowed else KEY_HELP_MUTATING) + KEY_HELP  # what acts, first
        note = ("Watch mode: a read-only kiosk; no action keys and no prompts." if self.settings.watch else
                "Read-only: cancel, terminate, acknowledge, maintenance and backup are switched off."
                if self.settings.read_only else
                "Actions act on the id shown in the confirmation and nothing else. Results and server errors "
                "appear as notifications.")
        self.push_screen(HelpScreen(keys, note))

    def action_filter(self) -> None:
        def apply(text: str | None) -> None:
            if text is not None:
                self.filter = Filter(text)
                self.draw()
                self._sessions_view_changed()

        self.push_screen(FilterScreen(self.filter.text), apply)

    def action_sort(self) -> None:
        pane = self.pane
        if not pane.sorts:
            self.notify(f"The {pane.title} pane has one order only.")
            return
        self._sort_by(pane, (self.sorts.get(pane.key, 0) + 1) % len(pane.sorts), False)

    def action_reverse_sort(self) -> None:
        pane = self.pane
        if not pane.sorts:
            self.notify(f"The {pane.title} pane has one order only.")
            return
        self._sort_by(pane, self.sorts.get(pane.key, 0), not self.sorts_reversed.get(pane.key, False))

    def on_data_table_header_selected(self, event: KeyedTable.HeaderSelected) -> None:
        """A click on a column's header sorts by it; a second click reverses the order."""
        pane = self.pane
        index = order_for_column(pane.orders, str(event.column_key.value))
        if index is None:
            return
        same = index == self.sorts.get(pane.key, 0) % len(pane.orders)
        self._sort_by(pane, index, same and not self.sorts_reversed.get(pane.key, False))

    def _sort_by(self, pane: Pane, index: int, reverse: bool) -> None:
        self.sorts[pane.key], self.sorts_reversed[pane.key] = index, reverse
        order = pane.orders[index] if pane.orders else None
        how = "" if order is None else (" (reversed)" if index == 0 and reverse else f" {order.arrow(reverse)}")
        self.notify(f"{pane.title}: sorted by {pane.sorts[index]}{how}", kind="sort")
        self.draw()
        self._sessions_view_changed()

    def action_hide_idle(self) -> None:
        self.hide_idle = not self.hide_idle
        self.notify("Idle sessions hidden." if self.hide_idle else "Idle sessions shown.", kind="idle")
        self.draw()
        self._sessions_view_changed()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self.shown = self.latest
            self.draw()
        self._update_status()

    def _set_interval(self, direction: int) -> None:
        if self.poller is not None:
            self.interval = self.poller.step_interval(direction)
        self.notify(f"Refreshing every {duration(self.interval)}.", kind="interval")
        self._update_status()

    def action_slower(self) -> None:
        self._set_interval(+1)

    def action_faster(self) -> None:
        self._set_interval(-1)

    def action_refresh_now(self) -> None:
        if self.refused is not None:  # new credentials on the server's side, maybe: one more try
            self.refused = None
            self.banner.hide()
            self.tabs.remove_class("stale")
            self.poll()
        elif self.poller is not None:
            self.poller.poll_now()

    def action_next_theme(self) -> None:
        names = self.theme_names
        self.theme = names[(names.index(self.theme) + 1) % len(names)] if self.theme in names else names[0]
        self.notify(f"Theme: {self.theme}", kind="theme")

    def _use_theme(self, name: str) -> None:
        self.theme = name

    def _theme_changed(self, _theme: object) -> None:
        if self.shown is not None:
            for table in self.tabs.query(KeyedTable):
                table.repaint()
            self.draw()

    def action_ash_window(self) -> None:
        self.ash_window = ASH_WINDOWS[(ASH_WINDOWS.index(self.ash_window) + 1) % len(ASH_WINDOWS)]
        if self.poller is not None:
            self.poller.ash_window = self.ash_window
            self.poller.poll_now()
        self.notify(f"ASH window: {self.ash_window // 60} minutes", kind="ash window")
        self.draw()

    def selected_target(self) -> SessionTarget | None:
        return self.pane.target(self.shown) if self.shown is not None else None

    def said_gone(self) -> bool:
        """If the row selected on this pane went away (the cursor stays, selecting nothing), say so."""
        table = self.focused if isinstance(self.focused, KeyedTable) else self.pane.query(KeyedTable).first() \
            if self.pane.query(KeyedTable) else None
        if table is None or table.gone is None:
            return False
        self.notify(f"The row you selected ({table.gone.rsplit('/', 1)[-1]}) is gone: nothing is selected until "
                    "you move the cursor.", title="row gone", severity="warning")
        return True

    def action_root_blocker(self) -> None:
        if self.said_gone():
            return
        target = self.selected_target()
        if target is None or self.shown is None:
            self.notify("Select a waiting session first.")
            return
        root = self.shown.root_blocker_of(target.session_id)
        group = self.shown.group_of(target.session_id) if root is None else None
        if group is not None and group.cycle:
            self.notify(f"Session {target.session_id} is in or behind deadlock cycle {group.cycle_text()}, which has "
                        f"no root blocker: {victim_note(self.shown)}.", severity="warning")
            return
        if root is None:
            self.notify(f"Session {target.session_id} is not waiting for anyone.")
            return
        if self.filter.text:
            self.filter = Filter()
            self._tell_poller()
            self.notify("Filter cleared to show the root blocker.")
        self._root_wanted = root
        if self.tabs.active == SessionsPane.key:
            self.draw()
        self.action_pane(SessionsPane.key)  # its first draw selects the root

    def _select_root(self, root: int) -> None:
        self.draw()
        sessions = self.pane_of(SessionsPane)
        if sessions.select_session(root):
            sessions.query_one(KeyedTable).focus()
            self.notify(f"Root blocker: session {root}.")
        else:
            self.notify(f"Root blocker is session {root}, which is not in the session list.", severity="warning")

    def on_data_table_row_selected(self, event: KeyedTable.RowSelected) -> None:
        if self.shown is None or self.tabs.active not in ("queries", "sessions") or self.said_gone():
            return
        key = event.row_key.value  # the row Enter was pressed on, even if the table re-sorted since
        if self.tabs.active == "queries":
            query = next((q for q in self.shown.queries if q.query_id == key), None)
            if query is None:
                self.notify(f"Statement {key} is no longer running.")
            else:
                self.open_detail(query)
            return
        target = session_target(self.shown, int(key)) if key and key.isdigit() else None
        if target is None:
            return
        if not target.query_id:
            self.notify(f"Session {target.session_id} runs no statement.")
            return
        # the Sessions pane's poll does not read the statements (the queries pane does): ask for this one
        self.open_detail(target.query_id, next((s for s in self.shown.sessions if s.session_id == target.session_id),
                                               None))

    @work(group="detail")
    async def open_detail(self, query: ActiveQuery | str, session: Session | None = None) -> None:
        if isinstance(query, str):
            found = await self.actions.statement(query, session)
            if found is None:
                self.notify(f"Statement {query} is no longer known to the server.")
                return
            query = found
        profile, note = await self.actions.fingerprint(query.sql_id)
        await self.push_screen(DetailScreen(query, profile, note))

    # -- actions (the flows live in actions.py) ------------------------------------------------

    def action_cancel_query(self) -> None:
        if not self.said_gone():
            self.actions.cancel(self.selected_target())

    def action_terminate(self) -> None:
        if not self.said_gone():
            self.actions.terminate(self.selected_target())

    def action_acknowledge(self) -> None:
        from .panes.alerts import AlertsPane

        if not self.said_gone():
            self.actions.acknowledge(self.pane_of(AlertsPane).selected(self.shown) if self.shown else None)

    def action_silence(self) -> None:
        from .panes.alerts import AlertsPane

        self.actions.silence(self.pane_of(AlertsPane).selected(self.shown) if self.shown else None)

    def action_maintenance(self) -> None:
        self.actions.maintenance()

    def action_backup(self) -> None:
        self.actions.backup()

    async def on_unmount(self) -> None:
        await self.source.close()
