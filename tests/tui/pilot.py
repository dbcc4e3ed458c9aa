"""Pilot helpers shared by the console tests."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from textual import events
from textual.app import App
from textual.keys import _character_to_key
from textual.pilot import Pilot
from textual.widgets import Input

from tui.key_order import KeysInOrder

# Workers still busy after this long are a hang, not slowness.
IDLE_SECONDS = 60.0


async def settle(pilot: Pilot) -> None:
    """Let the workers finish and their results reach the screen (a result may start
    another worker, e.g. a reload after a save)."""
    for _ in range(3):
        await idle(pilot.app)
        await pilot.pause()


async def idle(app: App[object]) -> None:
    """Wait until every key pressed has been handed over and has settled (the console
    holds a key until the previous one's effects have landed: on a loaded machine Pilot's
    `press` returned with keys still held), and every worker has finished, but those
    waiting for an answer from a screen on the stack (`push_screen_wait`): they wait for
    the test's next keys."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + IDLE_SECONDS
    while _keys_waiting(app) or sum(not w.is_finished for w in app.workers) > _asking(app):
        if loop.time() > deadline:
            raise TimeoutError(f"keys or workers still busy: {list(app.workers)}")
        await asyncio.sleep(0.01)


def _keys_waiting(app: App[object]) -> bool:
    return isinstance(app, KeysInOrder) and app.keys_waiting()


def _asking(app: App[object]) -> int:
    """How many workers wait for a screen's answer: its result futures not yet done."""
    return sum(
        1
        for screen in app.screen_stack
        for callback in screen._result_callbacks
        if callback.future is not None and not callback.future.done()
    )


async def burst(pilot: Pilot, *keys: str) -> None:
    """Type `keys` as a terminal over SSH delivers them: all in the app's queue before it
    handles the first (Pilot's `press` waits for the app to be idle after each key)."""
    for key in keys:
        name = _character_to_key(key) if len(key) == 1 and not key.isalnum() else key
        char = key if len(key) == 1 else {"enter": "\r", "tab": "\t", "escape": "\x1b"}.get(key)
        pilot.app.post_message(events.Key(name, char))
    await settle(pilot)


def after(*keys: str) -> Callable[[Pilot], Awaitable[None]]:
    """For snapshots' `run_before`: wait for the view's first read, then press `keys` one
    at a time, waiting for what each reads; the text cursors then stop blinking (hidden),
    so that a snapshot does not depend on when in the blink it is taken."""

    async def run(pilot: Pilot) -> None:
        for step in [(), *[(key,) for key in keys]]:
            await pilot.press(*step)
            await settle(pilot)
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False
        await pilot.pause()

    return run
