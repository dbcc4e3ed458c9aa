"""A known race of pynetdicom's association reactor, closed for the tests' peers.

pynetdicom's `send_*()` pauses the association's reactor thread before sending a
request, then waits for the response on the DIMSE message queue. The pause can come a
moment late: the reactor, woken when the previous request ended, may not have run yet,
so its stale "paused" flag lets `send_*()` go on, and the reactor then takes the
response off the queue itself, logs "Received unexpected C-STORE service message" and
drops it; `send_*()` waits out the DIMSE timeout and aborts (pynetdicom issue #875).
A peer that answers within a fraction of a millisecond, as this archive does, meets it
every few hundred requests on a loaded machine. Nothing on the wire changes: a response
the reactor takes while a `send_*()` is waiting goes back to the front of the queue,
where that `send_*()` finds it.
"""

from __future__ import annotations

from typing import Any

from pynetdicom.association import Association

_serve_request = Association._serve_request


def _serve_or_give_back(self: Association, msg: Any, context_id: int) -> None:
    waiting = not self._reactor_checkpoint.is_set()  # a send_*() paused the reactor
    if waiting and not self._sent_release and not msg.is_valid_request:
        queue = self.dimse.msg_queue
        with queue.mutex:
            queue.queue.appendleft((context_id, msg))
            queue.not_empty.notify()
        return
    _serve_request(self, msg, context_id)


def close() -> None:
    """Give responses the reactor took by mistake back to the waiting `send_*()`."""
    Association._serve_request = _serve_or_give_back  # type: ignore[method-assign]
