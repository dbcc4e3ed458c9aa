"""Waking a serving node's queue when a task is scheduled elsewhere on its host.

A runner looks for due tasks once a poll (a second); a task scheduled by another process
of the host (a network worker answering an N-ACTION, an attached console) would wait for
it, as long as a whole export of a thousand small instances takes. So the runner listens
on a Linux abstract datagram socket named after its storage's run folder (no file to
clean up, no path length limit) and whoever schedules sends it a byte. Nodes on other
hosts (several `serve` on one PostgreSQL) still find the task at their next poll.
"""

from __future__ import annotations

import hashlib
import logging
import socket
import threading
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


def address(run_dir: Path) -> str:
    """The abstract socket name of the runner serving the storage of `run_dir`."""
    digest = hashlib.sha1(str(run_dir.resolve()).encode(), usedforsecurity=False).hexdigest()
    return f"\0pacs-console-queue-{digest[:20]}"


def wake(name: str) -> None:
    """Tell the runner listening at `name` that a task is due (nothing when none is)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"!", name)
    except OSError:
        pass  # no runner on this host, or its queue is full: it polls anyway


class WakeListener:
    """Calls `on_wake()` whenever a byte arrives at `name`, in a thread of its own."""

    def __init__(self, name: str, on_wake: Callable[[], None]) -> None:
        self.name = name
        self.on_wake = on_wake
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._thread = threading.Thread(target=self._listen, name="queue-wake", daemon=True)
        self._stopping = False

    def start(self) -> bool:
        """Listen; False when another runner of this storage already does (a second
        `serve` on the same storage polls instead)."""
        try:
            self._sock.bind(self.name)
        except OSError as exc:
            log.warning("queue wake-up socket in use (%s): polling only", exc)
            self._sock.close()
            return False
        self._thread.start()
        return True

    def _listen(self) -> None:
        while True:
            try:
                self._sock.recv(64)
            except OSError:
                return
            if self._stopping:
                return
            self.on_wake()

    def stop(self) -> None:
        """Stop listening."""
        self._stopping = True
        if self._thread.is_alive():
            wake(self.name)
            self._thread.join(timeout=2)
        self._sock.close()
