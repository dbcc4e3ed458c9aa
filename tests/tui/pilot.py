"""Pilot helpers shared by the console tests."""

from __future__ import annotations

from textual.pilot import Pilot


async def settle(pilot: Pilot) -> None:
    """Let the workers finish and their results reach the screen (a result may start
    another worker, e.g. a reload after a save)."""
    for _ in range(3):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
