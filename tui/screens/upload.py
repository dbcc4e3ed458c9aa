"""Upload a file into the selected study: a DICOM file of the study, a PDF, a JPEG or
PNG image, or an MP4 video (core.services.upload, through the one ingest path)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.notifications import SeverityLevel
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from core.services.upload import KINDS, Uploaded, describe_study, upload
from tui import keymap
from tui.widgets.path_suggester import PathSuggester

if TYPE_CHECKING:
    from core.services.context import ServiceContext

# What each ingest outcome means to the person who uploaded the file.
_OUTCOMES: dict[str, tuple[str, SeverityLevel]] = {
    "stored": ("stored", "information"),
    "replaced": ("stored, replacing the earlier copy", "information"),
    "duplicate": ("already stored (the same file)", "information"),
    "ignored": ("not stored: the archive keeps the copy received from elsewhere", "warning"),
}


class UploadScreen(ModalScreen[str | None]):
    """`UploadScreen(study_instance_uid)`: type a path, enter uploads it. Dismisses with
    the SOP Instance UID stored, or None on escape; on an error the typed path stays."""

    DEFAULT_CSS = """
    UploadScreen { align: center middle; }
    UploadScreen #upload-box {
        width: 76; max-width: 100%; height: auto;
        border: thick $accent; background: $panel; padding: 0 1;
    }
    UploadScreen #upload-path { margin: 1 0 0 0; }
    UploadScreen #upload-state { height: auto; color: $text-muted; }
    """
    BINDINGS = keymap.bindings("upload", "store", "complete", "cancel", complete="complete path")

    def __init__(self, study_instance_uid: str) -> None:
        super().__init__()
        self.study_instance_uid = study_instance_uid
        self.busy = False

    @property
    def services(self) -> ServiceContext:
        return self.app.services  # type: ignore[attr-defined]

    def compose(self) -> ComposeResult:
        with Vertical(id="upload-box"):
            yield Label("[b]Upload into study[/b]", id="upload-title")
            yield Static(Text(self.study_instance_uid), id="upload-study")
            yield Input(
                placeholder=f"path of {KINDS}",
                suggester=PathSuggester(),
                id="upload-path",
            )
            yield Static("enter upload · tab complete · esc cancel", id="upload-state")

    @work(group="describe", exit_on_error=False)
    async def on_mount(self) -> None:
        self.query_one(Input).focus()
        text = await asyncio.to_thread(describe_study, self.services, self.study_instance_uid)
        self.query_one("#upload-study", Static).update(Text(text))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_upload()

    def action_complete(self) -> None:
        field = self.query_one(Input)
        field.cursor_position = len(field.value)
        field.action_cursor_right()  # at the end of the line this accepts the suggestion

    def action_upload(self) -> None:
        field = self.query_one(Input)
        path = field.value.strip()
        if self.busy:
            return
        if not path:
            self.notify("Type the path of the file to upload", severity="warning")
            return
        self.busy = True
        field.disabled = True
        self._state(f"Uploading {path}…")
        self.run_upload(path)

    @work(group="upload", exit_on_error=False)
    async def run_upload(self, path: str) -> None:
        """Store the file off the UI thread and say what became of it."""
        try:
            result = await asyncio.to_thread(upload, self.services, self.study_instance_uid, path)
        except Exception as exc:
            self._failed(exc)
            return
        self._uploaded(result)

    def _state(self, text: str) -> None:
        self.query_one("#upload-state", Static).update(Text(text))

    def _uploaded(self, result: Uploaded) -> None:
        name = Path(self.query_one(Input).value.strip()).name
        text, severity = _OUTCOMES.get(result.outcome, (result.outcome, "information"))
        self.notify(f"{name} ({result.kind}): {text}", title="Upload", severity=severity)
        self.dismiss(result.sop_instance_uid)

    def _failed(self, error: BaseException) -> None:
        # The typed path stays, to be corrected.
        self.busy = False
        field = self.query_one(Input)
        field.disabled = False
        field.focus()
        self._state(f"Not stored: {error}")
        self.notify(str(error), title="Upload failed", severity="error")

    def action_cancel(self) -> None:
        if self.busy:
            self.notify("The upload is running; it cannot be stopped halfway")
            return
        self.dismiss(None)
