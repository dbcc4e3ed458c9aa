"""The console: three modes of tabs (Monitoring, Navigation, Configuration) over the
archive's services, k9s-style keys (`:` view, `/` filter, `esc` back, `?` keys) and a
command palette (ctrl+p) with every view and action."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import App
from textual.binding import Binding
from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.dom import DOMNode
from textual.notifications import SeverityLevel
from textual.screen import Screen

import tui.widgets.picture  # noqa: F401 - asks the terminal about graphics before Textual reads keys
from tui import keymap, views
from tui.key_order import KeysInOrder
from tui.screens.keys import KeysScreen
from tui.screens.mode import ModeScreen
from tui.widgets.confirm import Confirm
from tui.widgets.prompt import Prompt
from tui.widgets.view import View

if TYPE_CHECKING:
    from core.services.context import ServiceContext


def view_bindings(screen: Screen[object]) -> list[tuple[DOMNode, Binding]]:
    """The keys of the view in front and of its own widgets (e.g. paging), with the node
    each acts on; the built-in keys of Textual's widgets (cursor moves) are left out."""
    found = []
    for active in screen.active_bindings.values():
        node, binding = active.node, active.binding
        if node is screen or isinstance(node, App) or not binding.description:
            continue
        if type(node).__module__.startswith("tui.") and active.enabled:
            found.append((node, binding))
    return found


class ViewCommands(Provider):
    """The palette's commands: go to any view, and every action of every view (choosing
    one switches to its view and runs it there)."""

    def _commands(self) -> Iterable[tuple[str, Callable[[], object], str]]:
        app: PacsConsole = self.app  # type: ignore[assignment]
        for spec in views.VIEWS:
            yield (
                f"view: {spec.title} ({views.MODE_TITLES[spec.mode]})",
                lambda name=spec.name: app.show_view(name),
                f":{spec.name}",
            )
        for spec in views.VIEWS:
            try:
                keys = spec.view_class().BINDINGS
            except Exception:  # a view that fails to load says why in its tab
                continue
            for binding in keys:
                if isinstance(binding, Binding) and binding.description:
                    yield (
                        f"{spec.title}: {binding.description}",
                        lambda name=spec.name, action=binding.action: app.run_in_view(name, action),
                        f"key {app.get_key_display(binding)}",
                    )

    async def discover(self) -> Hits:
        for text, command, help_text in self._commands():
            yield DiscoveryHit(text, command, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, command, help_text in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), command, help=help_text)


class PacsConsole(KeysInOrder):
    """The pacs-console application. `archive` is the in-process archive (None when
    attached to a running `serve`); `clock` is injectable for tests."""

    CSS_PATH = Path(__file__).with_name("app.tcss")
    TITLE = "pacs-console"
    COMMANDS = App.COMMANDS | {ViewCommands}
    BINDINGS = keymap.bindings(
        "app",
        *("keys", "command", "filter", "back", "quit"),
        *("monitoring", "navigation", "configuration"),
    )

    def __init__(
        self,
        services: ServiceContext,
        archive: object | None = None,
        clock: Callable[[], float] = time.time,
        start_view: str = "studies",
    ) -> None:
        super().__init__()
        self.start_view = start_view
        self.services = services
        self.archive = archive
        self.clock = clock
        self.history: list[str] = []
        self._shown: dict[str, ModeScreen] = {}
        self._pending: dict[str, str] = {}
        # Whether ctrl+q's question (what quitting stops) is being asked.
        self._asking_to_quit = False
        for mode in views.MODES:
            self.add_mode(mode, lambda mode=mode: self._mode_screen(mode))

    def _mode_screen(self, mode: str) -> ModeScreen:
        # A mode's screen is made on its first visit, opening on the view asked for.
        screen = ModeScreen(mode, initial=self._pending.pop(mode, ""))
        self._shown[mode] = screen
        return screen

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Show a toast with its text as it is, never read as markup: messages carry
        dcm4chee's `MPPS[uid=...]`, values and file names whose brackets would vanish
        (a widget's `notify` always passes markup=True, so the flag is ignored here)."""
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=False)

    @property
    def attached(self) -> bool:
        """True when the archive runs in another process (`console --attach`)."""
        return self.archive is None

    def on_mount(self) -> None:
        self.sub_title = "attached" if self.attached else self.services.config.device.name
        self.show_view(self.start_view)

    # -- views -----------------------------------------------------------------------

    def mode_screen(self) -> ModeScreen | None:
        screen = self.screen
        return screen if isinstance(screen, ModeScreen) else None

    def current_view(self) -> View | None:
        screen = self.mode_screen()
        return screen.active_view() if screen else None

    def current_view_title(self) -> str:
        view = self.current_view()
        spec = next((v for v in views.VIEWS if view and v.name == view.parent.id), None)
        return spec.title if spec else ""

    def show_view(self, name: str, remember: bool = True) -> None:
        """Switch to the mode of view `name` and bring its tab to the front."""
        spec = views.find(name)
        if spec is None:
            self.notify(
                f"No view called {name!r}; try one of: {', '.join(v.name for v in views.VIEWS)}",
                severity="warning",
            )
            return
        if remember and (not self.history or self.history[-1] != spec.name):
            self.history.append(spec.name)
        screen = self._shown.get(spec.mode)
        if screen is None:
            self._pending[spec.mode] = spec.name
        self.switch_mode(spec.mode)
        if screen is not None:
            screen.show_view(spec.name)

    def run_in_view(self, name: str, action: str) -> None:
        """Switch to view `name` and run its `action` there (from the palette)."""
        self.show_view(name)

        async def run() -> None:
            view = self.current_view()
            if view is not None:
                await self.run_action(action, view)

        self.call_after_refresh(run)

    def on_tabbed_content_tab_activated(self, event: object) -> None:
        # Tabs chosen with the mouse or the keyboard join the history too.
        view = self.current_view()
        name = view.parent.id if view is not None and view.parent is not None else None
        if name and (not self.history or self.history[-1] != name):
            self.history.append(name)

    # -- global keys -----------------------------------------------------------------

    def action_mode(self, mode: str) -> None:
        """Go to a mode, to the view last seen there (its first view at first)."""
        seen = [name for name in self.history if views.find(name).mode == mode]  # type: ignore[union-attr]
        self.show_view(seen[-1] if seen else views.views_of(mode)[0].name)

    def action_command(self) -> None:
        def go(text: str | None) -> None:
            if text:
                self.show_view(text.lstrip(":"))

        self.push_screen(Prompt(":", completions=views.completions()), go)

    def action_filter(self) -> None:
        view = self.current_view()
        if view is None:
            return

        # The rows follow the filter as it is typed, in views that can filter.
        live = view.filter if type(view).filter is not View.filter else None
        before = view.filter_text

        def apply(text: str | None) -> None:
            if text is not None:
                view.filter_text = text.strip()
                view.filter(text)
            elif live is not None:  # esc: the filter there was before
                live(before)

        self.push_screen(Prompt("/", on_change=live), apply)

    def action_back(self) -> None:
        """Leave a sub-view or drill-down level of the view in front; never another tab."""
        view = self.current_view()
        if view is None:
            return
        if view.filter_text:
            view.filter_text = ""
            view.filter("")
        else:
            view.back()

    def action_keys(self) -> None:
        view = self.current_view()
        view_keys = [
            (self.get_key_display(b), b.description) for _, b in view_bindings(self.screen)
        ]
        app_keys = [
            (self.get_key_display(b), b.description)
            for b in self.BINDINGS
            if isinstance(b, Binding)
        ]
        app_keys.append(
            (self.get_key_display(Binding("ctrl+p", "")), "command palette: every action")
        )
        self.push_screen(
            KeysScreen(self.current_view_title(), view.HELP if view else "", view_keys, app_keys)
        )

    @work(group="quit")
    async def action_quit(self) -> None:
        """Quit; with the archive in-process and associations open or tasks running, ask
        first, saying what quitting stops. Attached, the archive is another process's:
        quit at once."""
        if self.archive is None:
            self.exit()
            return
        if self._asking_to_quit:  # ctrl+q again while asked: the question stays, once
            return
        self._asking_to_quit = True
        try:
            question = await self._quit_question()
            if question is None or await self.push_screen_wait(Confirm(question, yes="Quit")):
                self.exit()
        finally:
            self._asking_to_quit = False

    async def _quit_question(self) -> str | None:
        """What quitting stops, as a question; None when nothing would stop."""
        try:
            peers, running = await asyncio.to_thread(self.what_quitting_stops)
        except Exception as exc:  # e.g. the database is down: still ask, never crash
            return f"What is running could not be read ({exc}): quit anyway?"
        return stopping_question(peers, running) if peers or running else None

    def what_quitting_stops(self) -> tuple[list[str], dict[str, int]]:
        """The peer (calling AE title) of each open association of the archive, all its
        processes; and how many tasks its queue runner (in this process) runs, by queue."""
        from core.services import tasks
        from core.services.status import run_dir, snapshot

        board = snapshot(run_dir(self.services.config.storage.path))
        peers = [str(a.get("remote_ae") or "?") for a in board.associations]
        return peers, tasks.running_in_this_process(self.services)


def stopping_question(peers: list[str], running: dict[str, int]) -> str:
    """E.g. "3 associations are open (MODALITY x2, CT1): quitting stops the archive and
    ends them. Quit?"; running tasks are named by queue, and said to run again at the
    next start if they do not end in the time stopping gives them."""
    said = []
    if peers:
        what = "1 association is" if len(peers) == 1 else f"{len(peers)} associations are"
        said.append(f"{what} open ({_named(Counter(peers))})")
    if running:
        n = sum(running.values())
        what = "1 task is" if n == 1 else f"{n} tasks are"
        said.append(f"{what} running ({_named(Counter(running))})")
    question = f"{' and '.join(said)}: quitting stops the archive"
    if peers:
        question += " and ends the associations" if running else " and ends them"
    if running:
        question += "; a task that does not finish in time runs again at the next start"
    return f"{question}. Quit?"


def _named(counts: Counter[str]) -> str:
    """Each name once, with how many times when more than once: `MODALITY x2, CT1`."""
    return ", ".join(f"{name} x{n}" if n > 1 else name for name, n in counts.most_common())
