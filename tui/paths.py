"""How the console shows paths: relative to the working folder when under it (as the
embedded default `./pacs-data` is printed at start), absolute otherwise."""

from __future__ import annotations

import os
from pathlib import Path

SQLITE = "sqlite:///"


def short_path(path: str | Path) -> str:
    """`path` relative to the working folder when it lies under it, else absolute."""
    absolute = Path(path).resolve()
    try:
        return str(absolute.relative_to(Path(os.getcwd()).resolve()))
    except ValueError:
        return str(absolute)


def short_url(url: str) -> str:
    """A database URL with a SQLite file path shortened like `short_path`."""
    if url.startswith(SQLITE) and url != SQLITE:
        return SQLITE + short_path(url.removeprefix(SQLITE))
    return url
