"""Asking before acting: the dialog names exactly what will be acted on; `y` acts, anything else not.

A dialog with a note takes typed text, and a letter typed there must never answer it: its note box
has the focus from the start, `y` and `n` are not keys of it, and it is answered by its buttons
(Enter in the note moves to Yes) or declined with Esc.
"""

from __future__ import annotations

from rich.table import Table
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from ..safe import safe_text

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{ width: 76; max-width: 100%; height: auto; max-height: 90%; border: thick $warning;
                     background: $surface; padding: 0 1; }}
{name} .title {{ text-style: bold; color: $warning; }}
{name} Horizontal {{ height: auto; align: right middle; }}
{name} Button {{ margin: 0 1; min-width: 10; }}
"""


def type_into(field: Input, event: events.Key) -> None:
    """A printable key that reached a dialog itself rather than its text field (typed before the
    field had the focus, handed on from the console, or after Tab left the field) is text: it goes
    into the field, never elsewhere. (A key the field takes itself never comes here.)"""
    if event.is_printable and event.character:
        event.stop()
        event.prevent_default()
        if not field.has_focus:
            # the focus arrives after this text: selecting the text then would let the next key replace it
            field.select_on_focus = False
            field.focus()
        field.insert_text_at_cursor(event.character)


class ConfirmScreen(ModalScreen[str | None]):
    """Returns None when declined; the note (maybe empty) when confirmed."""

    DEFAULT_CSS = DIALOG_CSS.format(name="ConfirmScreen")
    BINDINGS = [Binding("y", "letter(True)", "yes", show=False), Binding("n", "letter(False)", "no", show=False),
                Binding("escape", "answer(False)", "no", show=False)]

    def __init__(self, title: str, facts: list[tuple[str, object]], question: str, note: str | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.facts = facts
        self.question = question
        self.note_placeholder = note
        self.takes_text = note is not None  # keys typed just before it showed are handed to it

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(safe_text(self.title_text, 70), classes="title")
            yield Static(self._facts(), classes="facts")
            if self.note_placeholder is not None:
                yield Input(placeholder=self.note_placeholder, id="note", max_length=500, select_on_focus=False)
            yield Static(self.question if self.note_placeholder is None else
                         f"{self.question}\nEnter in the note moves to Yes; Enter on Yes answers; Esc: no.")
            with Horizontal():
                yield Button("Yes" if self.note_placeholder is not None else "Yes (y)", variant="error", id="yes")
                yield Button("No (Esc)" if self.note_placeholder is not None else "No (n, Esc)", variant="primary",
                             id="no")

    def _facts(self) -> Table:
        # a grid, so that a long value (the SQL acted on) wraps inside its own column
        facts = Table.grid(padding=(0, 2))
        facts.add_column(justify="right", style="bold", no_wrap=True)
        facts.add_column(overflow="fold")
        for label, value in self.facts:
            text = safe_text(value, 240)
            text.no_wrap, text.overflow = False, "fold"
            facts.add_row(label, text)
        return facts

    def set_fact(self, label: str, value: object) -> None:
        """A fact learnt after the dialog opened (a fresh read) replaces what it said."""
        self.facts = [(name, value if name == label else old) for name, old in self.facts]
        if self.is_mounted:
            self.query_one(".facts", Static).update(self._facts())

    def on_mount(self) -> None:
        # Typed text goes into the note; otherwise the safe choice has the focus, so an Enter typed
        # out of habit does nothing.
        self.query_one("#note" if self.note_placeholder is not None else "#no").focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action == "letter" and self.note_placeholder is not None)

    def on_key(self, event: events.Key) -> None:
        if self.note_placeholder is not None:
            type_into(self.query_one("#note", Input), event)

    def action_letter(self, yes: bool) -> None:
        self.action_answer(yes)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_answer(event.button.id == "yes")

    def on_input_submitted(self) -> None:
        self.query_one("#yes", Button).focus()

    def action_answer(self, yes: bool) -> None:
        note = self.query_one("#note", Input).value if self.note_placeholder is not None else ""
        self.dismiss(note if yes else None)
