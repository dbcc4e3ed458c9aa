"""Pilot helpers shared by the console tests."""

from __future__ import annotations

from textual import events
from textual.keys import _character_to_key
from textual.pilot import Pilot


async def settle(pilot: Pilot) -> None:
    """Let the workers finish and their results reach the screen (a result may start
    another worker, e.g. a reload after a save)."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def burst(pilot: Pilot, *keys: str) -> None:
    """Type `keys` as a terminal over SSH delivers them: all in the app's queue before it
    handles the first (Pilot's `press` waits for the app to be idle after each key)."""
    for key in keys:
        name = _character_to_key(key) if len(key) == 1 and not key.isalnum() else key
        char = key if len(key) == 1 else {"enter": "\r", "tab": "\t", "escape": "\x1b"}.get(key)
        pilot.app.post_message(events.Key(name, char))
    await settle(pilot)
