"""`m`: pick a maintenance operation and its target; the app then asks for confirmation.

The dialog lists the schemas and tables the server has (completing what is typed) and checks the
target against them, and shows the running and recent jobs with their state, duration and result.
It opens at once, in the key's handler (so that keys typed behind `m` land in it), and says
"loading…" until the flow hands it what the server has (`loaded`).
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from ..format import duration, size
from ..model import MaintenanceJob
from ..safe import safe_text
from .confirm import type_into

OPERATIONS = {
    "vacuum": "rebuild the database files, returning free pages",
    "analyze": "refresh the query planner's statistics",
    "reindex": "rebuild indexes",
    "checkpoint": "copy the write-ahead log into the database files",
}
WHOLE_SCHEMA = ("vacuum", "checkpoint")  # these work on a schema's file, not on one table
JOBS_SHOWN = 4


def job_result(job: MaintenanceJob) -> str:
    if job.status == "completed":
        if job.bytes_reclaimed is not None:
            return f"{size(max(0, job.bytes_reclaimed))} reclaimed"
        return f"{job.steps} schema{'s' if job.steps != 1 else ''} done"
    if job.status == "waiting":
        return f"waits for {job.wait_event or 'a lock'}"
    return job.error or ""


def job_line(job: MaintenanceJob) -> str:
    took = "" if job.duration_ms is None else duration(job.duration_ms / 1000)
    return (f"{job.operation or '–':<10} {job.target or 'all schemas':<18} {job.status or '–':<9} {took:>6}  "
            f"{job_result(job)}")


class MaintenanceScreen(ModalScreen[tuple[str, str | None] | None]):
    DEFAULT_CSS = """
    MaintenanceScreen { align: center middle; }
    MaintenanceScreen > Vertical { width: 76; max-width: 100%; height: auto; max-height: 100%;
                                   border: round $primary; background: $surface; padding: 0 1; }
    MaintenanceScreen OptionList { height: auto; max-height: 6; }
    MaintenanceScreen .targets { height: auto; max-height: 3; color: $text-muted; }
    MaintenanceScreen .problem { height: auto; color: $error; }
    MaintenanceScreen .jobs { height: auto; max-height: 5; border-top: solid $panel; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel", show=False)]
    takes_text = True  # keys typed just before it showed are handed to it

    def __init__(self) -> None:
        super().__init__()
        # not Widget.loading: that reactive hides the whole dialog behind a loading indicator
        self.reading = True
        self.targets: dict[str, list[str]] | None = None  # None: the server does not list them
        self.jobs: list[MaintenanceJob] | None = None

    def loaded(self, targets: dict[str, list[str]] | None, jobs: list[MaintenanceJob] | None) -> None:
        """What the server has, read after the dialog opened."""
        self.reading, self.targets, self.jobs = False, targets, jobs
        if self.is_mounted:  # else on_mount shows them
            self._show()

    def _show(self) -> None:
        self._offer(self.operation)
        self.query_one(".jobs", Static).update(self._jobs())

    def names(self, operation: str) -> list[str]:
        """What `operation` may target: every schema, and for analyze and reindex each table."""
        out: list[str] = []
        for schema, tables in (self.targets or {}).items():
            out.append(schema)
            if operation not in WHOLE_SCHEMA:
                out += [f"{schema}.{t}" for t in tables]
        return out

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("[b]Maintenance[/b]: choose an operation (Enter), then a target (Enter)")
            yield OptionList(*(Option(f"{name:<11} {what}", id=name) for name, what in OPERATIONS.items()),
                             id="operation")
            yield Input(placeholder="target: a schema or table, empty for all", id="target", max_length=200)
            yield Static("targets: loading…" if self.reading else "", classes="targets")
            yield Static(classes="problem")
            yield Static(self._jobs(), classes="jobs")
            yield Static("[dim]Esc cancels; nothing runs before you confirm[/dim]")

    def on_mount(self) -> None:
        self._show()

    @property
    def operation(self) -> str:
        options = self.query_one(OptionList)
        index = options.highlighted if options.highlighted is not None else 0
        return options.get_option_at_index(index).id or "vacuum"

    def _offer(self, operation: str) -> None:
        if self.reading:
            return
        if self.targets is None:
            self.query_one(".targets", Static).update("")
            return  # the server does not list them: the target is typed, and the server checks it
        names = self.names(operation)
        self.query_one("#target", Input).suggester = SuggestFromList(names, case_sensitive=False)
        text = Text("targets: ", style="bold", end="")
        text.append_text(safe_text(", ".join(names) or "no schemas", 3 * 70))
        if operation in WHOLE_SCHEMA:
            text.append(f" ({operation} works on whole schemas)")
        self.query_one(".targets", Static).update(text)

    def _jobs(self) -> Text:
        if self.reading:
            return Text("recent jobs: loading…", style="dim")
        if self.jobs is None:
            return Text("recent jobs: this server does not list them", style="dim")
        text = Text("recent jobs" + ("" if self.jobs else ": none yet"), style="bold", end="")
        for job in self.jobs[:JOBS_SHOWN]:
            text.append("\n")
            text.append_text(safe_text(job_line(job), 72))
        return text

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._offer(event.option.id or "vacuum")

    def on_option_list_option_selected(self) -> None:
        self.query_one("#target", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        operation, typed = self.operation, event.value.strip()
        if typed and self.reading:
            self.query_one(".problem", Static).update("The targets are still being read: Enter again in a moment.")
            return
        if typed and self.targets is not None:
            typed, problem = self.resolve(operation, typed)
            if problem:
                self.query_one(".problem", Static).update(safe_text(problem, 3 * 70))
                return
        self.dismiss((operation, typed or None))

    def resolve(self, operation: str, typed: str) -> tuple[str, str]:
        """(the target as the server spells it, ""), or (typed, why it is none)."""
        by_lower = {n.lower(): n for n in self.names("analyze")}
        name = by_lower.get(typed.lower())
        if name is None:
            tables = [n for n in by_lower.values() if n.lower().endswith(f".{typed.lower()}")]
            if len(tables) != 1:
                return typed, (f"No schema or table is named {typed}." if not tables else
                               f"{typed} is in several schemas: name one of {', '.join(tables)}.")
            name = tables[0]
        if "." in name and operation in WHOLE_SCHEMA:
            return typed, f"{operation} works on a whole schema: choose {name.split('.', 1)[0]}, not the table {name}."
        return name, ""

    def on_key(self, event: events.Key) -> None:
        fields = self.query(Input)
        if fields:
            type_into(fields.first(), event)

    def action_cancel(self) -> None:
        self.dismiss(None)
