"""`?`: the keys of the current view, then the keys that work everywhere."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from tui import keymap

Keys = list[tuple[str, str]]


def _literal(text: str) -> str:
    # markup's escape() leaves a lone "[" (the previous-page key), which then opens a tag.
    return text.replace("[", "\\[")


def _rows(keys: Keys) -> list[str]:
    # Pad before escaping: the escape character takes no column.
    return [f"  {_literal(f'{key:<10}')} {_literal(description)}" for key, description in keys]


class KeysScreen(ModalScreen[None]):
    """A list of keys; any of escape, q or ? closes it."""

    BINDINGS = keymap.bindings("keys", "dismiss")

    def __init__(self, title: str, help_text: str, view_keys: Keys, app_keys: Keys) -> None:
        """`view_keys` and `app_keys` are (key as shown, what it does)."""
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
