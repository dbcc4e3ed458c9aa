"""What follows the objects a process stores and writes what they call for in batches.

Storing must stay as fast as it is, so the store thread only notes in memory what an
object calls for (`on_event`, no I/O); a thread of the process writes the notes every
`interval`, and when the process stops (`flush`). Export rules and IAN
(core.services.forwarding) and UPS on store (core.services.ups_on_store) are such
followers.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

from core.events import Event
from core.services.context import ServiceContext

log = logging.getLogger(__name__)

# Seconds between writes of what was noted.
FLUSH_INTERVAL = 0.5

Key = TypeVar("Key")
Note = TypeVar("Note")
Rules = TypeVar("Rules")


class StoreFollower(ABC, Generic[Key, Note, Rules]):
    """Follows `services.events`: `start` subscribes it and starts its writing thread;
    `stop` unsubscribes and writes what is still noted. Subclasses note in `on_event`
    (under `_lock`, into `_pending`, then `_wake.set()`) and write in `flush`."""

    # The writing thread's name, and what is lost when the last write fails (for the log).
    thread_name = "store-follower"
    lost_what = "notes"

    def __init__(self, services: ServiceContext, interval: float = FLUSH_INTERVAL) -> None:
        self.services = services
        self.interval = interval
        self._pending: dict[Key, Note] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._rules_of: object = None
        self._rules: Rules | None = None

    def start(self) -> None:
        """Follow stored objects; what is noted is written by a thread of this process."""
        self.services.events.subscribe(self.on_event)
        self._thread = threading.Thread(target=self._run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop following, and write what is still noted."""
        self.services.events.unsubscribe(self.on_event)
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        if not self.flush():
            with self._lock:
                lost = len(self._pending)
            log.error("%d %s of stored objects could not be written", lost, self.lost_what)

    @abstractmethod
    def on_event(self, event: Event) -> None:
        """Note what a stored object calls for (in the store's thread: no I/O)."""

    @abstractmethod
    def flush(self) -> bool:
        """Write what is noted. Returns False when the database refused some of it: that
        stays noted (and is tried again at the next round)."""

    def _rules_for(self, source: object, compile_rules: Callable[[], Rules]) -> Rules:
        """The rules compiled from `source` (a config section), compiled again only when
        a reload brought another."""
        if self._rules is None or self._rules_of is not source:
            self._rules, self._rules_of = compile_rules(), source
        return self._rules

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            # Gather what the next objects add: one write for a burst of stores. Once
            # stopping, `stop` writes the rest.
            if self._stopping.wait(self.interval):
                return
            self._wake.clear()
            if not self.flush():
                self._wake.set()
