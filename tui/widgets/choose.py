"""Choose one of a list (where to send something), and whether it is for the rows the
action is about or for everything the search matches."""

from __future__ import annotations

from dataclasses import dataclass

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from tui import keymap


@dataclass(frozen=True)
class Chosen:
    """The option chosen (its id), and whether for all that match the search."""

    option: str
    all_matching: bool


class Choose(ModalScreen[Chosen | None]):
    """`Choose(title, options, rows, matching)`: `options` are (id, label); `rows` names
    what the action is about ("3 tagged studies"); `matching` names everything the search
    matches ("all 1,234 matching studies"), or is empty when that is not offered. `*`
    switches between the two; enter chooses; esc dismisses with None."""

    BINDINGS = keymap.bindings("choose", "all_matching", "cancel")
    DEFAULT_CSS = """
    Choose { align: center middle; }
    Choose #choose-box {
        width: 70; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $panel; padding: 0 1;
    }
    Choose #choose-title { text-style: bold; }
    Choose #choose-scope { color: $warning; }
    Choose OptionList { height: auto; max-height: 12; margin: 1 0 0 0; }
    Choose #choose-keys { color: $text-muted; }
    """

    def __init__(
        self, title: str, options: list[tuple[str, str]], rows: str, matching: str = ""
    ) -> None:
        super().__init__()
        self.title_text = title
        self.options = options
        self.rows = rows
        self.matching = matching
        self.all_matching = False

    def compose(self) -> ComposeResult:
        with Vertical(id="choose-box"):
            yield Label(self.title_text, id="choose-title", markup=False)
            yield Label(self._scope(), id="choose-scope", markup=False)
            yield OptionList(*(Option(Content(label), id=id) for id, label in self.options))
            keys = "enter choose · esc cancel"
            if self.matching:
                keys = "*: " + self.matching + " / " + self.rows + " · " + keys
            yield Label(keys, id="choose-keys", markup=False)

    def _scope(self) -> str:
        return "For: " + (self.matching if self.all_matching else self.rows)

    def on_mount(self) -> None:
        self.query_one(OptionList).focus()

    def action_switch(self) -> None:
        if self.matching:
            self.all_matching = not self.all_matching
            self.query_one("#choose-scope", Label).update(self._scope())

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        assert event.option.id is not None
        self.dismiss(Chosen(event.option.id, self.all_matching))
