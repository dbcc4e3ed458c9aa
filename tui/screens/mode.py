"""A mode (Monitoring, Navigation, Configuration): a bar naming the modes, the mode's
views as tabs, and the footer with the main keys."""

from __future__ import annotations

import logging

from textual.app import ComposeResult
from textual.screen import ModalScreen, Screen
from textual.widgets import Static, TabbedContent, TabPane

from tui.views import MODE_TITLES, MODES, ViewSpec, views_of
from tui.widgets.footer import KeyFooter
from tui.widgets.view import View


class ModeBar(Static):
    """The three modes, the current one highlighted, with the keys that reach them."""

    def __init__(self, mode: str) -> None:
        keys = {"monitoring": "F2", "navigation": "F3", "configuration": "F4"}
        parts = []
        for name in MODES:
            label = f" {keys[name]} {MODE_TITLES[name]} "
            parts.append(f"[reverse b]{label}[/]" if name == mode else label)
        super().__init__(" ".join(parts), id="mode-bar")


class BrokenView(View):
    """Stands in for a view that failed to load, so one broken tab leaves the console
    usable and says why."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def compose(self) -> ComposeResult:
        yield Static(
            f"This view could not be loaded: {self.reason}", classes="broken-view", markup=False
        )


def _create(spec: ViewSpec) -> View:
    try:
        return spec.create()
    except Exception as exc:
        logging.getLogger("pacs").exception("view %s failed to load", spec.name)
        return BrokenView(f"{type(exc).__name__}: {exc}")


class ModeScreen(Screen[None]):
    """One mode with its tabs; the app switches between three of these."""

    def __init__(self, mode: str, initial: str = "") -> None:
        super().__init__(name=mode)
        self.mode = mode
        self.initial = initial
        # Out of sight since its last suspend (see on_screen_suspend).
        self.left = False

    def compose(self) -> ComposeResult:
        yield ModeBar(self.mode)
        with TabbedContent(id="tabs", initial=self.initial):
            for spec in views_of(self.mode):
                with TabPane(spec.title, id=spec.name):
                    yield _create(spec)
        yield KeyFooter()

    def on_mount(self) -> None:
        self.call_after_refresh(self._focus)

    def on_screen_suspend(self) -> None:
        # Another mode came to the front, or a full screen (image) over this one; a
        # prompt or form over the view leaves it in sight.
        self.left = not isinstance(self.app.screen, ModalScreen)

    def on_screen_resume(self) -> None:
        if self.left:
            self._entered()

    def on_tabbed_content_tab_activated(self) -> None:
        self._entered()

    def _entered(self) -> None:
        view = self.active_view()
        if view is not None:
            view.entered()

    def show_view(self, name: str) -> None:
        """Bring the tab of view `name` to the front and focus it."""
        self.query_one(TabbedContent).active = name
        self.call_after_refresh(self._focus)

    def _focus(self) -> None:
        view = self.active_view()
        if view is not None:
            view.focus_default()

    def active_view(self) -> View | None:
        """The view of the tab in front."""
        tabs = self.query_one(TabbedContent)
        if not tabs.active:
            return None
        return tabs.get_pane(tabs.active).query_one(View)
