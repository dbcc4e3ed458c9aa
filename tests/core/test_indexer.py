"""What waits for the index writer's flush: an action handed to `after_durable` runs once
the FlushClock has passed the commit it depends on, and closing does not wait forever
for a writer that is gone."""

from __future__ import annotations

import time

import pytest

from core.index import writer as indexer_module
from core.index.rules import IndexResult
from core.index.writer import FlushClock, RemoteIndexer


def wait_for(check, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def stored(committed_at: float | None) -> IndexResult:
    return IndexResult(0, "stored", committed_at=committed_at)


def test_an_action_waits_for_the_flush_that_covers_its_commit() -> None:
    """Not before a flush that started after the commit; at once for a commit that was
    durable when it returned, or that an earlier flush already covers."""
    clock = FlushClock()
    indexer = RemoteIndexer("unused", b"key", clock)
    ran: list[str] = []
    committed = time.monotonic()
    indexer.after_durable(stored(committed), lambda: ran.append("flushed later"))
    time.sleep(5 * indexer_module.SETTLE_POLL)
    assert ran == []
    clock.advance(committed - 1)  # a flush that started before the commit
    time.sleep(5 * indexer_module.SETTLE_POLL)
    assert ran == []
    clock.advance(time.monotonic())
    wait_for(lambda: ran == ["flushed later"])
    indexer.after_durable(stored(None), lambda: ran.append("durable at commit"))
    indexer.after_durable(stored(committed), lambda: ran.append("already covered"))
    assert ran == ["flushed later", "durable at commit", "already covered"]
    indexer.close()


def test_a_failing_action_is_logged_and_the_others_run(caplog: pytest.LogCaptureFixture) -> None:
    clock = FlushClock()
    indexer = RemoteIndexer("unused", b"key", clock)
    ran: list[int] = []

    def fail() -> None:
        raise OSError("disk gone")

    committed = time.monotonic()
    indexer.after_durable(stored(committed), fail)
    indexer.after_durable(stored(committed), lambda: ran.append(1))
    clock.advance(time.monotonic())
    wait_for(lambda: ran == [1])
    indexer.close()
    assert "finishing a store failed" in caplog.text


def test_close_leaves_what_was_never_flushed_to_recovery(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer died before flushing: closing gives up after SETTLE_AT_CLOSE seconds
    without running the action (start-up recovery finishes that store)."""
    monkeypatch.setattr(indexer_module, "SETTLE_AT_CLOSE", 0.3)
    indexer = RemoteIndexer("unused", b"key", FlushClock())
    ran: list[int] = []
    indexer.after_durable(stored(time.monotonic()), lambda: ran.append(1))
    started = time.monotonic()
    indexer.close()
    assert 0.3 <= time.monotonic() - started < 3
    assert ran == []
    assert "1 stores left to start-up recovery" in caplog.text
