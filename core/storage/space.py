"""Free space: new objects are refused while the storage's filesystem (or the SQLite
database's, when that is another one) has less free space than the configured minimum,
dcm4chee's storage threshold ("minimal usable space"). Refusing before the disk is full
leaves the database on the same disk room to finish what it has begun; a write that
fails all the same is undone by the ingest path.

A shortage is logged once when it begins (or when a write meets a full disk) and once
when it ends, not at every refused object.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("pacs.storage")

# A shortage is over, for the log, once a tenth more than the minimum (at least 16 MiB
# more) is free again: a disk hovering at the minimum must not log a line per object.
HYSTERESIS_MIN = 16 << 20


def size_text(n: int) -> str:
    """A byte count for people: 1 GiB, 212 MiB, 3 KiB, 12 bytes."""
    for unit, shift in (("TiB", 40), ("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            digits = 0 if value >= 10 or value == int(value) else 1
            return f"{value:.{digits}f} {unit}"
    return f"{n} bytes"


class SpaceGuard:
    """Watches the free space of the filesystems holding `paths` (the storage folder
    first) against `min_free` bytes."""

    def __init__(self, storage_id: str, paths: Iterable[Path], min_free: int) -> None:
        self.storage_id = storage_id
        self.min_free = min_free
        self._paths = self._one_per_filesystem(list(paths))
        self._short = False
        self._lock = threading.Lock()

    @staticmethod
    def _one_per_filesystem(paths: list[Path]) -> list[Path]:
        seen: set[int] = set()
        out = []
        for path in paths:
            probe = path
            while not probe.exists() and probe != probe.parent:
                probe = probe.parent
            device = probe.stat().st_dev
            if device not in seen:
                seen.add(device)
                out.append(path)
        return out

    def _free(self, path: Path) -> int:
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        st = os.statvfs(probe)
        return st.f_bavail * st.f_frsize

    def check(self) -> str | None:
        """Why objects are refused now (short enough for an error comment), or None:
        while a watched filesystem has less than the minimum free. Nothing is looked at
        when the minimum is 0 and no shortage is going on."""
        if not self.min_free and not self._short:
            return None
        free, path = min((self._free(p), p) for p in self._paths)
        if free < self.min_free:
            self._begin(
                f"storage {self.storage_id}: {size_text(free)} free on {path}, less than the "
                f"minimum of {size_text(self.min_free)}: objects are refused (0xA700)"
            )
            return f"storage {self.storage_id} has less than {size_text(self.min_free)} free"
        if self._short and free >= self.min_free + max(self.min_free // 10, HYSTERESIS_MIN):
            with self._lock:
                was, self._short = self._short, False
            if was:
                log.warning(
                    "storage %s: %s free on %s again: objects are accepted",
                    self.storage_id,
                    size_text(free),
                    path,
                )
        return None

    def disk_full(self, detail: str) -> None:
        """A write met a full disk: log it, once per shortage."""
        self._begin(f"storage {self.storage_id}: {detail}")

    def _begin(self, message: str) -> None:
        with self._lock:
            was, self._short = self._short, True
        if not was:
            log.warning("%s", message)
