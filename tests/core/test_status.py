"""The status board: what each serving process publishes for consoles, merged across
processes, and how the config watcher follows config.toml."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from core.archive import Archive
from core.config import Config, ConfigWatcher, load
from core.events import AssociationInfo, EventBus, InstanceStored, QueryAnswered
from core.services.status import BUCKET_SECONDS, StatusBoard, run_dir, snapshot

NOW = 1_768_478_400.0


def _board(folder: Path, associations: list[AssociationInfo], clock: list[float]) -> StatusBoard:
    return StatusBoard(folder, EventBus(), lambda: associations, clock=lambda: clock[0])


def test_counts_land_in_ten_second_buckets_and_are_written(tmp_path: Path) -> None:
    """Stored instances, bytes and C-FIND latencies are summed per 10-second interval and
    the file holds them with the open associations."""
    clock = [NOW]
    info = AssociationInfo(1, "DCM4CHEE", "MODALITY", "127.0.0.1", 40000, datetime(2026, 1, 15))
    info.count("C-STORE")
    board = _board(tmp_path, [info], clock)
    for size in (100, 200):
        board.on_event(InstanceStored("1", "2", "3", size, "MODALITY", "stored"))
    board.on_event(QueryAnswered("STUDY", 0.004, 2))
    clock[0] += BUCKET_SECONDS
    board.on_event(InstanceStored("1", "2", "4", 50, "MODALITY", "stored"))
    board.write()
    merged = snapshot(tmp_path, now=clock[0])
    assert [(b.stored, b.bytes, b.finds) for b in merged.buckets] == [(2, 300, 1), (1, 50, 0)]
    assert merged.rates()[0][1] == 2 / BUCKET_SECONDS
    assert merged.rates()[0][3] == 4.0  # mean C-FIND latency, ms
    assert [(a["remote_ae"], a["operations"]) for a in merged.associations] == [
        ("MODALITY", {"C-STORE": 1})
    ]


def test_snapshot_merges_processes_and_drops_stale_files(tmp_path: Path) -> None:
    """Two live processes are summed; a file not rewritten for long (a dead process) is
    left out; a half-written file is ignored."""
    for pid, written, stored in ((1, NOW, 3), (2, NOW - 1, 4), (3, NOW - 60, 100)):
        (tmp_path / f"status-{pid}.json").write_text(
            json.dumps(
                {
                    "pid": pid,
                    "written": written,
                    "associations": [],
                    "buckets": [{"start": int(NOW) - 10, "stored": stored, "bytes": 0,
                                 "finds": 0, "find_seconds": 0.0}],
                }
            )
        )  # fmt: skip
    (tmp_path / "status-4.json").write_text("{not json")
    merged = snapshot(tmp_path, now=NOW)
    assert merged.processes == 2
    assert [b.stored for b in merged.buckets] == [7]


def test_stop_removes_the_status_file(tmp_path: Path) -> None:
    """A stopped board leaves no file that would show ghost associations."""
    board = _board(tmp_path, [], [time.time()])
    board.start()
    board.write()
    assert board.path.exists()
    board.stop()
    assert not board.path.exists()


def test_config_watcher_applies_remote_aes_only(tmp_path: Path) -> None:
    """A new remote AE in config.toml reaches the running archive; a changed port is only
    reported as needing a restart."""
    path = tmp_path / "config.toml"
    path.write_text('[[ae]]\ntitle = "DCM4CHEE"\nport = 11112\n')
    current = [load(path)]
    watcher = ConfigWatcher(lambda: current[0], lambda c: current.__setitem__(0, c))
    path.write_text(
        '[[ae]]\ntitle = "DCM4CHEE"\nport = 11999\n'
        '[[remote_ae]]\ntitle = "STORESCP"\nhost = "127.0.0.1"\nport = 11113\n'
    )
    watcher.check()
    assert [r.title for r in current[0].remote_ae] == ["STORESCP"]
    assert current[0].ae[0].port == 11112
    path.write_text("not toml [")
    watcher.check()
    assert [r.title for r in current[0].remote_ae] == ["STORESCP"]


def test_status_files_of_gone_processes_are_removed_when_serving_starts(
    make_config: Callable[..., Config],
) -> None:
    """Files left by killed processes pile up no more: starting to serve removes the
    status files (and half-written ones) of processes that no longer exist, and of one
    that has not written for minutes; a live, fresh one stays."""
    config = make_config()
    folder = run_dir(config.storage.path)
    folder.mkdir(parents=True)
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = folder / f"status-{finished.pid}.json"
    half = folder / f"status-{finished.pid}.tmp"
    silent = folder / f"status-{os.getppid()}.json"
    fresh = folder / "status-1.json"
    for path in (dead, half, silent, fresh):
        path.write_text("{}")
    old = time.time() - 600
    os.utime(silent, (old, old))
    archive = Archive(config)
    archive.start()
    try:
        assert fresh.exists()
        assert not dead.exists() and not half.exists() and not silent.exists()
    finally:
        archive.stop(grace=2)
