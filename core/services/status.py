"""What the archive is doing, readable from any process: open associations and activity
over the last hour.

Every process that serves associations keeps a StatusBoard: it counts stored objects,
bytes and C-FIND latencies in 10-second buckets and, once a second, writes them with its
open associations to `<storage>/.run/status-<pid>.json` (written aside, then renamed).
The console, in the serving process or attached from another one, reads them all with
`snapshot()`. Nothing is sent per operation: a board is a few counters under a lock.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from core.events import (
    AssociationInfo,
    Event,
    EventBus,
    InstanceStored,
    QueryAnswered,
)

BUCKET_SECONDS = 10
HISTORY_SECONDS = 3600
WRITE_INTERVAL = 1.0
# A status file not rewritten for this long belongs to a process that is gone.
STALE_SECONDS = 10.0
RUN = ".run"


def run_dir(storage_root: str | Path) -> Path:
    """Where the serving processes of a storage write their status."""
    return Path(storage_root) / RUN


@dataclass
class Bucket:
    """Activity of one 10-second interval (`start`: epoch seconds)."""

    start: int
    stored: int = 0
    bytes: int = 0
    finds: int = 0
    find_seconds: float = 0.0

    def add(self, other: Bucket) -> None:
        self.stored += other.stored
        self.bytes += other.bytes
        self.finds += other.finds
        self.find_seconds += other.find_seconds


@dataclass
class Snapshot:
    """Open associations of all serving processes, and their activity by interval."""

    associations: list[dict[str, Any]] = field(default_factory=list)
    buckets: list[Bucket] = field(default_factory=list)
    processes: int = 0

    def rates(self) -> list[tuple[int, float, float, float]]:
        """(start, stored instances/s, MB/s, mean C-FIND ms) per interval, oldest first."""
        out = []
        for b in self.buckets:
            mean = b.find_seconds / b.finds * 1000 if b.finds else 0.0
            out.append((b.start, b.stored / BUCKET_SECONDS, b.bytes / BUCKET_SECONDS / 1e6, mean))
        return out


class StatusBoard:
    """The status of one serving process, written to the run folder every second."""

    def __init__(
        self,
        folder: Path,
        events: EventBus,
        associations: Callable[[], list[AssociationInfo]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.folder = folder
        self.path = folder / f"status-{os.getpid()}.json"
        self._associations = associations
        self._clock = clock
        self._buckets: dict[int, Bucket] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._events = events
        self._thread: threading.Thread | None = None

    def _bucket(self) -> Bucket:
        start = int(self._clock()) // BUCKET_SECONDS * BUCKET_SECONDS
        bucket = self._buckets.get(start)
        if bucket is None:
            bucket = self._buckets[start] = Bucket(start)
            oldest = start - HISTORY_SECONDS
            for key in [k for k in self._buckets if k < oldest]:
                del self._buckets[key]
        return bucket

    def on_event(self, event: Event) -> None:
        """Count an event (called in the publishing thread)."""
        if isinstance(event, InstanceStored):
            with self._lock:
                bucket = self._bucket()
                bucket.stored += 1
                bucket.bytes += event.size
        elif isinstance(event, QueryAnswered):
            with self._lock:
                bucket = self._bucket()
                bucket.finds += 1
                bucket.find_seconds += event.seconds

    def start(self) -> None:
        """Subscribe and write every second until `stop`."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._events.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._run, name="status", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(WRITE_INTERVAL):
            self.write()

    def write(self) -> None:
        """Write the current status file (aside, then renamed: readers never see half)."""
        with self._lock:
            buckets = [asdict(b) for b in sorted(self._buckets.values(), key=lambda b: b.start)]
        associations = []
        for info in self._associations():
            entry = asdict(info)
            entry["opened"] = info.opened.isoformat()
            entry["pid"] = os.getpid()
            associations.append(entry)
        body = {
            "pid": os.getpid(),
            "written": self._clock(),
            "associations": associations,
            "buckets": buckets,
        }
        aside = self.path.with_suffix(".tmp")
        try:
            aside.write_text(json.dumps(body))
            os.replace(aside, self.path)
        except OSError:
            pass  # a full disk must not stop the archive; the console shows stale data

    def stop(self) -> None:
        """Stop writing and remove this process's status file."""
        self._stop.set()
        self._events.unsubscribe(self.on_event)
        if self._thread is not None:
            self._thread.join()
        self.path.unlink(missing_ok=True)


def remove_stale(folder: Path, now: float | None = None) -> int:
    """Remove the status files of serving processes that are gone (killed, crashed):
    their process no longer exists, or the file has not been rewritten for a minute.
    Returns how many were removed."""
    now = time.time() if now is None else now
    removed = 0
    for path in folder.glob("status-*.*"):
        pid = path.stem.removeprefix("status-")
        try:
            written = path.stat().st_mtime
        except FileNotFoundError:
            continue
        if pid.isdigit() and _alive(int(pid)) and now - written < 6 * STALE_SECONDS:
            continue
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def snapshot(folder: Path, now: float | None = None) -> Snapshot:
    """The merged status of all live serving processes of a run folder."""
    now = time.time() if now is None else now
    merged: dict[int, Bucket] = {}
    result = Snapshot()
    for path in sorted(folder.glob("status-*.json")):
        try:
            body = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if now - body.get("written", 0) > STALE_SECONDS:
            continue
        result.processes += 1
        result.associations.extend(body.get("associations", []))
        for raw in body.get("buckets", []):
            bucket = Bucket(**raw)
            if bucket.start < now - HISTORY_SECONDS:
                continue
            merged.setdefault(bucket.start, Bucket(bucket.start)).add(bucket)
    result.associations.sort(key=lambda a: a["opened"])
    result.buckets = [merged[k] for k in sorted(merged)]
    return result
