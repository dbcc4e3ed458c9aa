"""The base of every tab: access to the archive's services, the failures of its workers
said, re-reading when entered, and the hooks the app's global keys call (`/` filter,
`esc` back, refresh). Work off the UI thread is Textual's `@work`: a worker awaits the
blocking call in a thread (`asyncio.to_thread`) and shows its result itself."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from textual.containers import Vertical
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from core.services.context import ServiceContext
    from tui.app import PacsConsole

# A view shown this soon after it was mounted has just read its data: no second read.
FRESH_SECONDS = 1.0


class View(Vertical):
    """A tab of the console. Subclasses fill `compose`, declare BINDINGS with ids, and
    override `filter`, `back` and `reload` as they need."""

    DEFAULT_CSS = "View { height: 1fr; }"
    #: One line shown at the top of the `?` keys screen.
    HELP = ""
    #: The filter typed with `/` ("" when none): esc clears it before going back.
    filter_text = ""

    def on_mount(self) -> None:
        self._mounted = time.monotonic()

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        # A worker's unexpected failure is said, with its reason (workers that expect
        # one, e.g. a refused value, catch it and say so themselves).
        worker = event.worker
        if event.state == WorkerState.ERROR and worker.error is not None:
            self.notify(reason(worker.error), title="Failed", severity="error")

    def entered(self) -> None:
        """The view came to the front (its tab, or its mode): read its data again, never
        showing what was read when it was last seen."""
        if time.monotonic() - self._mounted > FRESH_SECONDS:
            self.reload()

    def read_at(self) -> str:
        """The time of day now, for "read at 12:03:44" (the console's clock)."""
        return time.strftime("%H:%M:%S", time.localtime(self.console.clock()))

    @property
    def console(self) -> PacsConsole:
        return self.app  # type: ignore[return-value]

    @property
    def services(self) -> ServiceContext:
        return self.console.services

    def filter(self, text: str) -> None:
        """Show only the rows of the list in view that contain `text` (empty: all)."""
        self.notify("Nothing to filter here", severity="warning")

    def back(self) -> bool:
        """Go back one step inside this view (e.g. from series to studies); False when
        there is nothing to go back to, so the app goes back to the previous view."""
        return False

    def reload(self) -> None:
        """Fetch the view's data again."""

    def focus_default(self) -> None:
        """Focus the widget to start from: the first focusable one of the view."""
        for widget in self.query("*"):
            if widget.focusable:
                widget.focus()
                return


def reason(exc: BaseException) -> str:
    """The first line of an error's message (a database error's own, not SQLAlchemy's)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]
