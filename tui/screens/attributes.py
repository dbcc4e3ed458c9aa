"""The attributes of a study, series or instance as an expandable tree, with keys to save
them as DICOM JSON or as text (dcm4chee's "Show attributes")."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from pydicom import Dataset
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from core.services.study_files import save_attributes
from tui import keymap
from tui.widgets.attribute_tree import AttributeTree
from tui.widgets.prompt import ask_until_done, question

_EXTENSIONS = {"json": "json", "text": "txt"}
_NAMES = {"json": "JSON", "text": "text"}


def default_file(uid: str, fmt: str) -> str:
    """A file name for saved attributes, from the UID made safe for a path."""
    safe = re.sub(r"[^0-9A-Za-z.]", "_", uid)[:64] or "attributes"
    return f"attributes-{safe}.{_EXTENSIONS[fmt]}"


class AttributesScreen(ModalScreen[None]):
    """`AttributesScreen(heading, dataset, uid)`: the tree; j saves JSON, t saves text (a
    path is asked, the file written in a worker); esc closes."""

    BINDINGS = keymap.bindings("attributes", "save_json", "save_text", "close")
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

    @work(group="attributes-save", exit_on_error=False)
    async def action_save(self, fmt: str) -> None:
        """Ask where to save, then write the file off the UI thread; on an error the
        prompt comes back with the path typed."""

        async def attempt(text: str) -> str | None:
            if not text.strip():
                return None
            path = Path(text.strip()).expanduser()
            written = await asyncio.to_thread(save_attributes, self.dataset, path, fmt)
            return f"Saved the attributes as {_NAMES[fmt]} to {written}"

        await ask_until_done(
            self,
            lambda typed: question(f"Save {_NAMES[fmt]} to:", typed, paths=True),
            default_file(self.uid, fmt),
            attempt,
            "Not saved",
        )
