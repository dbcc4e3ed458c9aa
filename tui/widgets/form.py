"""The modal form of the console: a heading, one line per field (label and input), the
reason a save was refused, and the keys. One line per field, so a form fits a 24-line
terminal.

The form stays open while the caller saves; a refused value shows the reason under the
fields and everything typed stays, to be corrected."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from tui import keymap
from tui.widgets.confirm import Confirm


@dataclass(frozen=True)
class FormField:
    """One line of a form: the name its value is saved under, the label, the text it
    opens with, a hint shown while empty and, if not 0, the most characters it takes."""

    name: str
    label: str
    value: str = ""
    placeholder: str = ""
    max_length: int = 0


class FieldForm(ModalScreen[None]):
    """Calls `save(form, values)` (field name -> typed text) on ctrl+s, or enter in the
    last field (enter and tab in the others move to the next); the caller closes the form
    when saved, or calls `refused(reason)`. esc cancels, asking first if anything was
    typed. Every form of the console behaves so.

    The widgets' ids start with `prefix`: `#{prefix}-{field name}`, `#{prefix}-error`."""

    BINDINGS = keymap.bindings("form", "save", "cancel")
    DEFAULT_CSS = """
    FieldForm { align: center middle; }
    FieldForm .form-box {
        width: 72; max-width: 100%; height: auto;
        border: thick $accent; background: $panel; padding: 0 1;
    }
    FieldForm .form-heading { margin-bottom: 1; }
    FieldForm .form-row { height: 1; }
    FieldForm .form-row Label { color: $text-muted; }
    FieldForm .form-row Input {
        width: 1fr; height: 1; border: none; padding: 0 1; background: $boost;
    }
    FieldForm .form-row Input:focus { background: $primary 40%; }
    FieldForm .form-error { color: $error; height: auto; margin-top: 1; }
    FieldForm .form-keys { color: $text-muted; height: 1; }
    """

    def __init__(
        self,
        heading: str,
        fields: Sequence[FormField],
        save: Callable[[FieldForm, dict[str, str]], None],
        *,
        prefix: str,
        label_width: int,
    ) -> None:
        super().__init__()
        self.heading = heading
        self.fields = tuple(fields)
        self.save = save
        self.prefix = prefix
        self.label_width = label_width
        self.saving = False

    def compose(self) -> ComposeResult:
        keys = "enter/tab next field · ctrl+s save · esc cancel"
        with Vertical(id=f"{self.prefix}-box", classes="form-box"):
            yield Static(
                self.heading, id=f"{self.prefix}-heading", classes="form-heading", markup=False
            )
            for field in self.fields:
                with Horizontal(classes="form-row"):
                    label = Label(field.label)
                    label.styles.width = self.label_width
                    yield label
                    yield Input(
                        field.value,
                        placeholder=field.placeholder,
                        max_length=field.max_length,
                        id=f"{self.prefix}-{field.name}",
                    )
            yield Static("", id=f"{self.prefix}-error", classes="form-error", markup=False)
            yield Static(keys, id=f"{self.prefix}-keys", classes="form-keys")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def values(self) -> dict[str, str]:
        """What is typed in the fields, by field name."""
        inputs = self.query(Input)
        return {f.name: typed.value for f, typed in zip(self.fields, inputs, strict=True)}

    def refused(self, reason: str) -> None:
        """Show why saving failed; the typed values stay."""
        self.saving = False
        self._say(reason)

    def action_save(self) -> None:
        # One save at a time: enter pressed again while saving does nothing.
        if self.saving:
            return
        self.saving = True
        self._say("saving…")
        self.save(self, self.values())

    def action_cancel(self) -> None:
        if self.values() == {f.name: f.value for f in self.fields}:
            self.dismiss(None)
            return

        def answer(yes: bool | None) -> None:
            if yes:
                self.dismiss(None)

        self.app.push_screen(Confirm("Discard what was typed?", yes="Discard"), answer)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if event.input is not self.query(Input).last():
            self.focus_next()
        else:
            self.action_save()

    def _say(self, text: str) -> None:
        self.query_one(f"#{self.prefix}-error", Static).update(text)
