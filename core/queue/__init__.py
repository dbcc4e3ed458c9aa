"""Persistent tasks (DESIGN.md: one task queue for every kind of deferred or outbound work):
scheduling, the registry of handlers, claiming with leases, retry with back-off, the
operations of the Queues page and the per-queue workers of a serving node."""
