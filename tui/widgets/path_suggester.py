"""Completion of file paths in an Input, as a shell completes them on tab."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from textual.suggester import Suggester


def complete_path(value: str) -> str | None:
    """`value` completed with the first entry (in name order) of its folder that starts
    with what follows the last `/`; folders get a trailing `/`. None without a match."""
    if not value:
        return None
    head, sep, prefix = value.rpartition("/")
    where = Path(os.path.expanduser(head + sep)) if sep else Path(".")
    try:
        names = sorted(entry.name for entry in os.scandir(where) if entry.name.startswith(prefix))
    except OSError:
        return None
    for name in names:
        if not prefix.startswith(".") and name.startswith("."):
            continue  # hidden entries only when asked for
        suffix = "/" if (where / name).is_dir() else ""
        return value[: len(value) - len(prefix)] + name + suffix
    return None


class PathSuggester(Suggester):
    """Suggests the rest of a path from the file system (read in a thread: a slow or
    network file system never holds up typing)."""

    def __init__(self) -> None:
        # The file system changes: never cache.
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return await asyncio.to_thread(complete_path, value)
