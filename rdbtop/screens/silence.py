"""`z` on the Alerts pane: silence (snooze) the selected alert (its rule and labels) or every alert
of its rule, for a while. The duration field has the focus; Enter or ctrl+s creates the silence,
Esc does nothing; a printable key that reaches the dialog itself is text for the field last typed
in (the scope's radio buttons keep space, which toggles them)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, RadioButton, RadioSet, Static

from ..safe import safe_text
from .confirm import DIALOG_CSS, type_into

MAX_SECONDS = 30 * 86400  # the engine's longest silence
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> float | None:
    """`90s`, `30m`, `2h`, `1d`, `1h30m`, or a bare number of minutes; None if it is none of these."""
    text = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        seconds = float(text) * 60
    elif text and re.fullmatch(rf"(?:{_PART.pattern}\s*)+", text):
        seconds = sum(float(n) * _UNIT[u] for n, u in _PART.findall(text))
    else:
        return None
    return seconds if 0 < seconds <= MAX_SECONDS else None


@dataclass(frozen=True)
class SilenceRequest:
    rule_id: str | None
    labels: dict[str, str] = field(default_factory=dict)
    duration_seconds: float = 3600.0
    comment: str | None = None


class SilenceScreen(ModalScreen[SilenceRequest | None]):
    DEFAULT_CSS = DIALOG_CSS.format(name="SilenceScreen") + """
    SilenceScreen RadioSet { width: 100%; height: auto; }
    SilenceScreen .problem { color: $error; height: auto; }
    """
    BINDINGS = [Binding("escape", "cancel", "cancel", show=False),
                Binding("ctrl+s", "create", "create", show=False, priority=True)]

    def __init__(self, title: str, rule_id: str | None, labels: dict[str, str]) -> None:
        super().__init__()
        self.alert_title = title
        self.rule_id = rule_id
        self.labels = labels
        self.typing_in = "#duration"  # the field printable keys go to when no field has the focus

    def compose(self) -> ComposeResult:
        labels = " ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        with Vertical():
            yield Static(safe_text(f"Silence: {self.alert_title}", 70), classes="title")
            with RadioSet(id="scope"):
                if self.labels:
                    yield RadioButton(Text.assemble("this alert only: ", safe_text(labels, 50)), value=True,
                                      id="alert")
                if self.rule_id:
                    yield RadioButton(Text.assemble("every alert of rule ", safe_text(self.rule_id, 40)),
                                      value=not self.labels, id="rule")
            yield Input(value="1h", placeholder="for how long: 30m, 2h, 1d (at most 30d)", id="duration",
                        max_length=20)
            yield Input(placeholder="comment: why, e.g. planned disk swap", id="comment", max_length=500)
            yield Static("", classes="problem")
            yield Static("[dim]Tab: next field · Enter or ctrl+s: create the silence · Esc: nothing[/dim]")

    def on_mount(self) -> None:
        self.query_one("#duration", Input).focus()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        if isinstance(event.widget, Input) and event.widget.id:
            self.typing_in = f"#{event.widget.id}"

    def on_key(self, event: events.Key) -> None:
        if not (event.key == "space" and isinstance(self.focused, (RadioSet, RadioButton))):
            type_into(self.query_one(self.typing_in, Input), event)

    def on_input_submitted(self) -> None:
        self.action_create()

    def action_create(self) -> None:
        seconds = parse_duration(self.query_one("#duration", Input).value)
        if seconds is None:
            self.query_one(".problem", Static).update("The duration must be like 30m, 2h or 1d, and at most 30d.")
            self.query_one("#duration", Input).focus()
            return
        pressed = self.query_one(RadioSet).pressed_button
        whole_rule = pressed is not None and pressed.id == "rule"
        comment = self.query_one("#comment", Input).value.strip() or None
        self.dismiss(SilenceRequest(self.rule_id, {} if whole_rule else dict(self.labels), seconds, comment))

    def action_cancel(self) -> None:
        self.dismiss(None)
