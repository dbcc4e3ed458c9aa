"""`?`: the keys of the current view, then the keys that work everywhere."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static


def _key(binding: Binding) -> str:
    return binding.key_display or ", ".join(k.strip() for k in binding.key.split(","))


def _rows(bindings: list[Binding]) -> list[str]:
    return [f"  {_key(b):<14} {b.description}" for b in bindings if b.description]


class KeysScreen(ModalScreen[None]):
    """A list of keys; any of escape, q or ? closes it."""

    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close", id="keys-close")]

    def __init__(
        self, title: str, help_text: str, view_keys: list[Binding], app_keys: list[Binding]
    ):
        super().__init__()
        self.title_text = title
        self.help_text = help_text
        self.view_keys = view_keys
        self.app_keys = app_keys

    def compose(self) -> ComposeResult:
        lines = [f"[b]{self.title_text}[/b]"]
        if self.help_text:
            lines += [self.help_text]
        lines += ["", "[b]This view[/b]", *(_rows(self.view_keys) or ["  (no keys of its own)"])]
        lines += ["", "[b]Everywhere[/b]", *_rows(self.app_keys)]
        with VerticalScroll(id="keys-box"):
            yield Static("\n".join(lines), id="keys-text")

    def action_dismiss(self) -> None:
        self.dismiss(None)
