"""The device's count of established associations, shared by the serving processes."""

from __future__ import annotations

import copy
import multiprocessing


class AssociationLimit:
    """The device's count of established associations against `maximum`, shared by the
    worker processes that serve them (one slot per worker), and each worker's open
    connections, by which the workers share out new connections."""

    def __init__(self, maximum: int, workers: int = 1) -> None:
        context = multiprocessing.get_context("spawn")
        self.maximum = maximum
        self.counts = context.Array("i", max(workers, 1))
        self.connections = context.Array("i", max(workers, 1))
        self.worker = 0

    def for_worker(self, worker: int) -> AssociationLimit:
        """The same shared counts, as seen by worker number `worker`."""
        view = copy.copy(self)
        view.worker = worker
        return view

    def acquire(self) -> bool:
        """Count one more association, unless the maximum is reached."""
        with self.counts.get_lock():
            if sum(self.counts) >= self.maximum:
                return False
            self.counts[self.worker] += 1
            return True

    def release(self) -> None:
        with self.counts.get_lock():
            self.counts[self.worker] -= 1

    def connected(self, delta: int) -> None:
        """A connection of this worker opened (+1) or closed (-1)."""
        with self.connections.get_lock():
            self.connections[self.worker] += delta

    def busier_than_others(self) -> bool:
        """True when another worker has fewer connections (it should accept next)."""
        connections = self.connections[:]
        return connections[self.worker] > min(connections)

    def reset(self, worker: int) -> None:
        """Forget the counts of a worker that died."""
        with self.counts.get_lock():
            self.counts[worker] = 0
        with self.connections.get_lock():
            self.connections[worker] = 0
