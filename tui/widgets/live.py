"""Live views refresh on a timer; these say when a refresh would be seen."""

from __future__ import annotations

from textual.widget import Widget


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
