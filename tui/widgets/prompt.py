"""One-line prompts at the bottom of the screen: `:` view names, `/` filters."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.suggester import Suggester, SuggestFromList
from textual.widgets import Input, Label

from tui import keymap
from tui.widgets.path_suggester import PathSuggester
from tui.widgets.view import reason

if TYPE_CHECKING:
    from textual.dom import DOMNode


class Prompt(ModalScreen[str | None]):
    """A prompt line; dismisses with the text on Enter, None on Escape. With
    `completions` (or any `suggester`, e.g. of paths), the rest of a matching name is
    suggested (accept it with right/tab). `on_change` sees the text as it is typed."""

    BINDINGS = keymap.bindings("prompt", "cancel", "complete")

    def __init__(
        self,
        prefix: str,
        value: str = "",
        completions: list[str] | None = None,
        suggester: Suggester | None = None,
        on_change: Callable[[str], None] | None = None,
    ):
        super().__init__()
        self.on_change = on_change
        self.prefix = prefix
        self.value = value
        self.completions = completions
        self.suggester = suggester

    def compose(self) -> ComposeResult:
        suggester = (
            SuggestFromList(self.completions, case_sensitive=False)
            if self.completions
            else self.suggester
        )
        with Horizontal(id="prompt-line"):
            yield Label(self.prefix, id="prompt-prefix")
            # Not selected on focus: a key typed as the prompt opens would replace it.
            yield Input(
                value=self.value, suggester=suggester, id="prompt-input", select_on_focus=False
            )

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.on_change is not None:
            self.on_change(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_complete(self) -> None:
        field = self.query_one(Input)
        field.cursor_position = len(field.value)
        field.action_cursor_right()  # at the end of the line this accepts the suggestion


def question(text: str, value: str = "", *, paths: bool = False) -> Prompt:
    """A prompt asking `text` (the whole question shows, not a one-character prefix),
    starting from `value`; with `paths`, typed paths are completed."""
    prompt = Prompt(text + " ", value=value, suggester=PathSuggester() if paths else None)
    prompt.add_class("question")
    return prompt


async def ask_until_done(
    node: DOMNode,
    prompt: Callable[[str], Prompt],
    typed: str,
    attempt: Callable[[str], Awaitable[str | None]],
    failed: str,
) -> None:
    """In a worker: ask with `prompt(typed)` and run `attempt` on the answer, then say
    what it returns (None: nothing was done, e.g. an empty answer). An error is said
    under the title `failed` and the question comes again with what was typed; esc
    ends it."""
    while True:
        text = await node.app.push_screen_wait(prompt(typed))
        if text is None:
            return
        typed = text
        try:
            said = await attempt(text)
        except Exception as exc:
            node.notify(reason(exc), title=failed, severity="error")
            continue
        if said:
            node.notify(said)
        return


async def save_csv_asking(
    node: DOMNode,
    ask: str,
    default: str,
    save: Callable[[Path], int],
    counted: Callable[[int], str],
) -> None:
    """In a worker: ask for a file (`default` first, paths completed as typed) and write
    the CSV there with `save(path)` in a thread, which returns how many rows it wrote;
    says `Saved {counted(rows)} as CSV to {path}`. After an error the question comes
    again with what was typed; an empty answer or esc saves nothing."""

    async def attempt(text: str) -> str | None:
        if not text.strip():
            return None
        path = Path(text.strip()).expanduser()
        count = await asyncio.to_thread(save, path)
        return f"Saved {counted(count)} as CSV to {path}"

    await ask_until_done(
        node, lambda typed: question(ask, typed, paths=True), default, attempt, "CSV not saved"
    )
