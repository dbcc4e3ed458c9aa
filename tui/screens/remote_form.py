"""The form that adds or edits a remote AE: title, host, port.

The form stays open while the view saves; a refused value shows the reason under the
fields and everything typed stays, to be corrected."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

FIELDS = (("title", "AE title"), ("host", "Host"), ("port", "Port"))


class RemoteAEForm(ModalScreen[None]):
    """Calls `save(form, values)` on ctrl+s (or enter in the last field); the caller
    closes the form when saved, or calls `refused(reason)`."""

    BINDINGS = [
        Binding("ctrl+s", "save", "Save", id="remote-form-save"),
        Binding("escape", "cancel", "Cancel", id="remote-form-cancel"),
    ]
    DEFAULT_CSS = """
    RemoteAEForm { align: center middle; }
    RemoteAEForm #remote-form-box {
        width: 60; max-width: 100%; height: auto;
        border: thick $accent; background: $panel; padding: 0 1;
    }
    RemoteAEForm .remote-form-row { height: 3; }
    RemoteAEForm .remote-form-row Label { width: 10; padding: 1 0 0 0; }
    RemoteAEForm .remote-form-row Input { width: 1fr; }
    RemoteAEForm #remote-form-error { color: $error; height: auto; }
    RemoteAEForm #remote-form-buttons { height: 3; align: right middle; }
    RemoteAEForm #remote-form-buttons Button { margin: 0 0 0 1; min-width: 14; }
    """

    def __init__(
        self,
        heading: str,
        values: dict[str, str],
        save: Callable[[RemoteAEForm, dict[str, str]], None],
    ) -> None:
        super().__init__()
        self.heading = heading
        self.initial = values
        self.save = save
        self.saving = False

    def compose(self) -> ComposeResult:
        with Vertical(id="remote-form-box"):
            yield Static(f"[b]{self.heading}[/b]", id="remote-form-heading")
            for name, label in FIELDS:
                with Horizontal(classes="remote-form-row"):
                    yield Label(label)
                    yield Input(
                        self.initial.get(name, ""),
                        id=f"remote-form-{name}",
                        type="text",
                        max_length=255,
                    )
            yield Static("", id="remote-form-error", markup=False)
            with Horizontal(id="remote-form-buttons"):
                yield Button("Save (ctrl+s)", id="remote-form-save", variant="primary")
                yield Button("Cancel (esc)", id="remote-form-cancel")

    def on_mount(self) -> None:
        self.query_one("#remote-form-title", Input).focus()

    def values(self) -> dict[str, str]:
        """What is typed in the fields."""
        return {name: self.query_one(f"#remote-form-{name}", Input).value for name, _ in FIELDS}

    def refused(self, reason: str) -> None:
        """Show why saving failed; the typed values stay."""
        self.saving = False
        self.query_one("#remote-form-error", Static).update(reason)

    def action_save(self) -> None:
        if self.saving:
            return
        self.saving = True
        self.query_one("#remote-form-error", Static).update("saving…")
        self.save(self, self.values())

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        # Enter moves to the next field; in the last one it saves.
        if event.input.id == "remote-form-port":
            self.action_save()
        else:
            self.focus_next()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "remote-form-save":
            self.action_save()
        else:
            self.action_cancel()
