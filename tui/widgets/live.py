"""Live views refresh on a timer; these say when a refresh would be seen."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.widget import Widget

if TYPE_CHECKING:
    from tui.widgets.view import View


def showing(widget: Widget) -> bool:
    """True when `widget`'s tab is the one in front, in the mode on screen (a prompt or
    form over it does not hide it): hidden tabs need not read anything."""
    pane = widget.parent
    return (
        pane is not None
        and pane.display
        and widget.is_attached
        and widget.screen in widget.app.screen_stack
    )


def refresh_while_showing(
    view: View, seconds: float, paused: Callable[[], bool] = lambda: False
) -> None:
    """Reload `view` now, then every `seconds` while it is showing and not `paused()`:
    nothing is read while the tab is hidden; the next tick catches up."""
    view.reload()

    def tick() -> None:
        if not paused() and showing(view):
            view.reload()

    view.set_interval(seconds, tick)
