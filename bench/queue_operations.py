"""Queue operations at scale, on SQLite and PostgreSQL: scheduling an export task for
every study matching a search (default 100,000 studies), then, with those tasks queued,
the Queues tab's first page and the bulk operations on all of them.

- schedule: every study matching the search (all studies) read as the console's "all
  matching" actions read them (core.services.studies.csv_rows, a page at a time), and one
  Export task of type `export` per study scheduled in one batch
  (core.services.outbound.schedule_export);
- first page: what the Queues tab reads to show its first page: the counts per queue and
  status (core.services.tasks.counts), the count of the Export queue's tasks and their
  first page of 50, newest first (tasks.count, tasks.page); also with a status filter;
- bulk cancel, reschedule and delete of all tasks matching the filter (queue Export), each
  one statement (tasks.cancel, tasks.reschedule, tasks.delete).

Targets (issue 14): first page <= 100 ms, bulk cancel <= 5 s. No serving node runs: the
tasks stay queued (the index is filled with bulk INSERTs, as in console_paging.py).

    python bench/queue_operations.py [--studies N] [--postgres URL] [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import fresh_schema
from console_paging import PG_URL, fill

from core.config import parse
from core.db import migrate
from core.db.engine import Database
from core.events import EventBus
from core.index.writer import LocalIndexer
from core.services import outbound, studies, tasks
from core.services.context import ServiceContext
from core.storage.filesystem import FileStorage

PAGE = 50
EXPORTER = "TO_STORESCP"
# A peer nobody runs: the tasks are never run, only scheduled and operated on.
CONFIG = f"""
[[remote_ae]]
title = "STORESCP"
host = "127.0.0.1"
port = 1
[[exporter]]
id = "{EXPORTER}"
kind = "dicom"
destination = "STORESCP"
"""
EXPORT = tasks.TaskFilter(queue=tasks.QueueName.EXPORT.value)


def _ms(work: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Median milliseconds of `repeat` runs of `work`, and its last result."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def first_page(
    services: ServiceContext, where: tasks.TaskFilter, repeat: int
) -> tuple[float, str, int]:
    """The Queues tab's first page of the tasks matching `where`: the counts of every
    queue, the count matching, the first 50 rows. Median milliseconds of it all, of each
    part (as text), and the count matching."""
    parts = {
        "counts": lambda: tasks.counts(services),
        "count": lambda: tasks.count(services, where),
        "page": lambda: tasks.page(services, where, PAGE),
    }
    totals, each = [], {name: [] for name in parts}
    total = 0
    for _ in range(repeat):
        overall = 0.0
        for name, work in parts.items():
            ms, got = _ms(work)
            each[name].append(ms)
            overall += ms
            total = got if name == "count" else total
        totals.append(overall)
    detail = ", ".join(f"{name} {statistics.median(v):.1f}" for name, v in each.items())
    return statistics.median(totals), f"({detail})", total


def analyze(db: Database) -> None:
    """Fresh statistics of the task table, as PostgreSQL's autovacuum keeps them after
    that many new rows (SQLite has none unless asked)."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE task")


def run(label: str, url: str, n: int, repeat: int) -> list[tuple[str, float, str]]:
    """Fill `n` studies, schedule an export of each, measure; rows (what, ms, target)."""
    db = Database(url)
    migrate.upgrade(db.engine)
    started = time.perf_counter()
    fill(db, n, n)
    print(f"{label}: {n:,} studies filled in {time.perf_counter() - started:.1f} s")
    config = parse(f'[database]\nurl = "{url}"\n{CONFIG}')
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        indexer = LocalIndexer(db)
        services = ServiceContext(config, db, FileStorage("fs1", folder), EventBus(), indexer)
        form = studies.StudySearch()
        ms, matching = _ms(
            lambda: [outbound.Entity(r.study_iuid) for r in studies.csv_rows(services, form)]
        )
        rows.append((f"read {len(matching):,} matching studies", ms, ""))
        ms, (_, pks) = _ms(lambda: outbound.schedule_export(services, EXPORTER, matching))
        rows.append((f"schedule {len(pks):,} export tasks", ms, ""))
        analyze(db)
        ms, detail, total = first_page(services, EXPORT, repeat)
        assert total == n, total
        rows.append((f"first page, Export queue ({total:,} tasks)", ms, f"<= 100 ms {detail}"))
        scheduled = tasks.TaskFilter(queue=EXPORT.queue, status=tasks.TaskStatus.SCHEDULED)
        ms, detail, _ = first_page(services, scheduled, repeat)
        rows.append(("first page, Export + SCHEDULED", ms, f"<= 100 ms {detail}"))
        ms, cancelled = _ms(lambda: tasks.cancel(services, EXPORT))
        assert cancelled == n, cancelled
        rows.append((f"bulk cancel ({cancelled:,} tasks)", ms, "<= 5000 ms"))
        ms, detail, _ = first_page(services, EXPORT, repeat)
        rows.append(("first page after the cancel", ms, f"<= 100 ms {detail}"))
        ms, rescheduled = _ms(lambda: tasks.reschedule(services, EXPORT))
        rows.append((f"bulk reschedule ({rescheduled:,} tasks)", ms, ""))
        ms, deleted = _ms(lambda: tasks.delete(services, EXPORT))
        rows.append((f"bulk delete ({deleted:,} tasks)", ms, ""))
        indexer.close()
    db.dispose()
    return rows


def report(label: str, rows: list[tuple[str, float, str]]) -> None:
    """Print one database's figures, each with its target if it has one."""
    print(f"\nQueue operations, {label}")
    for what, ms, target in rows:
        print(f"  {what:<42}{ms:>10.1f} ms  {target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--postgres", default=PG_URL, help="PostgreSQL URL ('' to skip)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of a page (median)")
    args = parser.parse_args()
    for label, rows in run_all(args.studies, args.repeat, args.postgres):
        report(label, rows)


def run_all(
    studies_: int, repeat: int, postgres: str = PG_URL
) -> list[tuple[str, list[tuple[str, float, str]]]]:
    """The figures on SQLite (a file in a temporary folder), then on PostgreSQL (a fresh
    schema at `postgres`) unless it is ''."""
    with tempfile.TemporaryDirectory() as folder:
        found = [
            ("SQLite", run("SQLite", f"sqlite:///{Path(folder)}/archive.db", studies_, repeat))
        ]
    if postgres:
        found.append(("PostgreSQL", run("PostgreSQL", fresh_schema(postgres), studies_, repeat)))
    return found


if __name__ == "__main__":
    main()
