"""The base of every tab: access to the archive's services, work off the UI thread
(`Background`, which screens use too), and the hooks the app's global keys call (`/`
filter, `esc` back, refresh)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from textual.containers import Vertical
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from core.services.context import ServiceContext
    from tui.app import PacsConsole

T = TypeVar("T")


class Background:
    """Blocking work off the UI thread, for a widget or a screen: `background` runs it in
    a thread worker and hands the result to the UI thread."""

    def background(
        self,
        work: Callable[[], T],
        done: Callable[[T], Any],
        *,
        group: str,
        failed: Callable[[BaseException], Any] | None = None,
        exclusive: bool = True,
    ) -> Worker[T]:
        """Run blocking `work` (database, files, network) in a thread; `done` gets its
        result on the UI thread; an exception is shown as a notification with the reason
        (or passed to `failed`). A newer call of the same group cancels an older one."""

        def run() -> T:
            return work()

        worker = self.run_worker(
            run, thread=True, exclusive=exclusive, group=group, exit_on_error=False
        )

        def on_state(event: Worker.StateChanged) -> None:
            if event.worker is not worker:
                return
            if event.state == WorkerState.SUCCESS:
                done(worker.result)  # type: ignore[arg-type]
            elif event.state == WorkerState.ERROR and worker.error is not None:
                if failed is not None:
                    failed(worker.error)
                else:
                    self.notify(_reason(worker.error), title="Failed", severity="error")

        self._worker_callbacks[worker] = on_state
        return worker

    @property
    def _worker_callbacks(self) -> dict[Worker[Any], Callable[[Worker.StateChanged], None]]:
        callbacks = self.__dict__.get("_background_callbacks")
        if callbacks is None:
            callbacks = self.__dict__["_background_callbacks"] = {}
        return callbacks

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        callback = self._worker_callbacks.get(event.worker)
        if callback is not None:
            if event.state in (WorkerState.SUCCESS, WorkerState.ERROR, WorkerState.CANCELLED):
                del self._worker_callbacks[event.worker]
            callback(event)


class View(Background, Vertical):
    """A tab of the console. Subclasses fill `compose`, declare BINDINGS with ids, and
    override `filter`, `back` and `reload` as they need."""

    DEFAULT_CSS = "View { height: 1fr; }"
    #: One line shown at the top of the `?` keys screen.
    HELP = ""
    #: The filter typed with `/` ("" when none): esc clears it before going back.
    filter_text = ""

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


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first[:300]
