"""The attributes of a study, series or instance as an expandable tree, with keys to save
them as DICOM JSON or as text (dcm4chee's "Show attributes")."""

from __future__ import annotations

import re
from pathlib import Path

from pydicom import Dataset
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from core.services.study_files import save_attributes
from tui.widgets.attribute_tree import AttributeTree
from tui.widgets.path_suggester import PathSuggester
from tui.widgets.prompt import Prompt
from tui.widgets.view import Background

_EXTENSIONS = {"json": "json", "text": "txt"}
_NAMES = {"json": "JSON", "text": "text"}


def default_file(uid: str, fmt: str) -> str:
    """A file name for saved attributes, from the UID made safe for a path."""
    safe = re.sub(r"[^0-9A-Za-z.]", "_", uid)[:64] or "attributes"
    return f"attributes-{safe}.{_EXTENSIONS[fmt]}"


class AttributesScreen(Background, ModalScreen[None]):
    """`AttributesScreen(heading, dataset, uid)`: the tree; j saves JSON, t saves text (a
    path is asked, the file written in a worker); esc closes."""

    BINDINGS = [
        Binding("j", "save('json')", "save as JSON", id="attributes-save-json"),
        Binding("t", "save('text')", "save as text", id="attributes-save-text"),
        Binding("escape,q", "close", "close", id="attributes-close"),
    ]
    DEFAULT_CSS = """
    AttributesScreen { align: center middle; }
    AttributesScreen #attributes-box {
        width: 100%; height: 100%; border: round $accent; background: $panel; padding: 0 1;
    }
    AttributesScreen #attributes-heading { height: 1; text-style: bold; }
    AttributesScreen AttributeTree { height: 1fr; background: $panel; }
    AttributesScreen #attributes-keys { height: 1; color: $text-muted; }
    """

    def __init__(self, heading: str, dataset: Dataset, uid: str) -> None:
        super().__init__()
        self.heading = heading
        self.dataset = dataset
        self.uid = uid

    def compose(self) -> ComposeResult:
        with Vertical(id="attributes-box"):
            yield Static(self.heading, id="attributes-heading", markup=False)
            yield AttributeTree(self.dataset, id="attributes-tree")
            yield Static(
                "enter/space open · j save JSON · t save text · esc close", id="attributes-keys"
            )

    def on_mount(self) -> None:
        self.query_one(AttributeTree).focus()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_save(self, fmt: str, typed: str = "") -> None:
        """Ask where to save, then write the file in a worker; on an error the prompt
        comes back with the path typed."""

        def answered(text: str | None) -> None:
            if not text or not text.strip():
                return
            path = Path(text.strip()).expanduser()

            def saved(written: Path) -> None:
                self.notify(f"Saved the attributes as {_NAMES[fmt]} to {written}")

            def failed(exc: BaseException) -> None:
                self.notify(f"{exc}", title="Not saved", severity="error")
                self.action_save(fmt, text)

            self.background(
                lambda: save_attributes(self.dataset, path, fmt),
                saved,
                group="attributes-save",
                failed=failed,
            )

        prompt = Prompt(
            f"Save {_NAMES[fmt]} to: ",
            value=typed or default_file(self.uid, fmt),
            suggester=PathSuggester(),
        )
        prompt.add_class("question")
        self.app.push_screen(prompt, answered)
