"""Console paging: the Studies tab's searches (count + one page, newest first) over N
studies (default 100,000) and M instances (default 1,000,000) on SQLite and PostgreSQL.

The index is filled with bulk INSERTs (no files: paging reads only the index), one
series per study and M/N instances per study on average, two studies per patient on
average, study dates over ten years. Each search prints the count latency and the
latencies of the first, middle and last page (page size 50) and of the page after the
middle one (a seek from the middle page), as the console's worker runs them
(core.services.studies.search: the count once per search, then one page per key press).
With --plan, the plan of the first page's statement is printed too. With --keep DIR the
SQLite file (DIR/archive.db) and the PostgreSQL schema (bench_console_paging) stay, and
a later run with the same sizes reuses them instead of filling again (filling 1,000,000
instances takes minutes).

    python bench/console_paging.py [--studies N] [--instances M] [--postgres URL]
                                   [--repeat N] [--plan] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import fresh_schema
from sqlalchemy import create_engine, func, insert, select, text

from core.config import parse
from core.db import migrate
from core.db.engine import Database
from core.db.models import Instance, Patient, Series, Study
from core.events import EventBus
from core.index.writer import LocalIndexer
from core.services import query as q
from core.services import studies
from core.services.context import ServiceContext
from core.storage.filesystem import FileStorage

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
KEPT_SCHEMA = "bench_console_paging"
FAMILY = ["SMITH", "JONES", "BROWN", "TAYLOR", "WILSON", "MUELLER", "SCHMIDT", "DOE", "KHAN"]
GIVEN = ["JOHN", "JANE", "MARY", "PETER", "ANNA", "PAUL", "LAURA", "MAX", "EVA", "TOM"]
DESCRIPTIONS = ["CT Chest", "CT Abdomen", "MR Knee", "MR Brain", "CR Thorax", "US Abdomen"]
MODALITIES = ["CT", "CT", "CT", "MR", "MR", "CR", "US"]
FIRST_DAY = date(2016, 1, 1)
DAYS = 3652
BATCH = 5000
PAGE = 50
CT = "1.2.840.10008.5.1.4.1.1.2"


def _pn(name: str) -> dict:
    return {"vr": "PN", "Value": [{"Alphabetic": name}]}


def _v(vr: str, value: object) -> dict:
    return {"vr": vr, "Value": [value]}


def _dumps(attrs: dict) -> str:
    return json.dumps(attrs, separators=(",", ":"))


def fill(db: Database, n: int, instances: int) -> None:
    """Insert `n` studies with their patients, series and about `instances` instances."""
    per_study = max(1, instances // n)
    rng = random.Random(7)
    now = datetime(2026, 1, 15, 12, 0)
    patients = max(1, n // 2)
    with db.engine.begin() as conn:
        rows = []
        for p in range(1, patients + 1):
            name = f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}"
            pid = f"P{p:07d}"
            attrs = {"00100010": _pn(name), "00100020": _v("LO", pid)}
            rows.append(
                {
                    "pk": p,
                    "patient_id": pid,
                    "patient_name": name,
                    "patient_name_upper": name.upper(),
                    "birth_date": "19700101",
                    "sex": "O",
                    "attrs": _dumps(attrs),
                    "created": now,
                    "updated": now,
                }
            )
            if len(rows) == BATCH:
                conn.execute(insert(Patient), rows)
                rows = []
        if rows:
            conn.execute(insert(Patient), rows)
        studies_, series_, instances_ = [], [], []
        instance_pk = 0

        def flush() -> None:
            for table, batch in ((Study, studies_), (Series, series_), (Instance, instances_)):
                if batch:
                    conn.execute(insert(table), batch)
                    batch.clear()

        for s in range(1, n + 1):
            day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
            study_date = day.strftime("%Y%m%d")
            study_time = f"{rng.randrange(24):02d}{rng.randrange(60):02d}00"
            description = rng.choice(DESCRIPTIONS)
            accession = f"A{s:08d}"
            uid = f"1.2.826.0.1.3680043.8.498.9.{s}"
            attrs = {
                "00080020": _v("DA", study_date),
                "00080030": _v("TM", study_time),
                "00080050": _v("SH", accession),
                "00081030": _v("LO", description),
                "0020000D": _v("UI", uid),
            }
            studies_.append(
                {
                    "pk": s,
                    "patient_fk": rng.randrange(1, patients + 1),
                    "study_iuid": uid,
                    "study_date": study_date,
                    "study_time": study_time,
                    "accession_number": accession,
                    "study_description": description,
                    "attrs": _dumps(attrs),
                    "created": now,
                    "updated": now,
                }
            )
            modality = rng.choice(MODALITIES)
            series_.append(
                {
                    "pk": s,
                    "study_fk": s,
                    "series_iuid": f"{uid}.1",
                    "modality": modality,
                    "series_number": 1,
                    "attrs": _dumps({"00080060": _v("CS", modality)}),
                    "created": now,
                    "updated": now,
                }
            )
            for i in range(rng.randrange(1, 2 * per_study)):
                instance_pk += 1
                instances_.append(
                    {
                        "pk": instance_pk,
                        "series_fk": s,
                        "sop_iuid": f"{uid}.1.{i + 1}",
                        "sop_cuid": CT,
                        "instance_number": i + 1,
                        "attrs": "{}",
                        "created": now,
                        "updated": now,
                    }
                )
            if len(instances_) >= BATCH:
                flush()
        flush()
    if db.engine.dialect.name == "postgresql":
        # Fresh statistics, as autovacuum keeps them (SQLite has none unless asked).
        with db.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


SEARCHES = {
    "all studies": studies.StudySearch(),
    "PatientName SMITH*": studies.StudySearch(patient_name="SMITH*"),
    "StudyDate one year": studies.StudySearch(study_date="20200101-20201231"),
    "Modality MR": studies.StudySearch(modality="MR"),
    "PatientID exact": studies.StudySearch(patient_id="P0001234"),
}


def _ms(work, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def plan(services: ServiceContext, form: studies.StudySearch) -> str:
    """The database's plan for the middle page's keys (the rows the OFFSET walks)."""
    listing = q.listing(form.query(services.config), studies.STUDY_ORDER)
    statement = (
        select(*(c for c, _ in listing.sort))
        .select_from(listing.from_)
        .where(*listing.where)
        .order_by(*(c.desc() if d else c.asc() for c, d in listing.sort))
        .offset(50_000)
        .limit(PAGE)
    )
    with services.db.engine.connect() as conn:
        sql = str(statement.compile(conn, compile_kwargs={"literal_binds": True}))
        if services.db.is_sqlite:
            rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}").all()
            return "\n".join(f"    {row[-1]}" for row in rows)
        rows = conn.exec_driver_sql(f"EXPLAIN {sql}").all()
        return "\n".join(f"    {row[0]}" for row in rows)


def _filled(db: Database, n: int, instances: int) -> bool:
    """Whether the database already holds the studies and instances of these sizes."""
    with db.engine.connect() as conn:
        studies_ = conn.execute(select(func.count()).select_from(Study)).scalar_one()
        if studies_ == 0:
            return False
        instances_ = conn.execute(select(func.count()).select_from(Instance)).scalar_one()
    if studies_ != n or abs(instances_ - instances) > instances // 10:
        raise SystemExit(f"the kept database holds {studies_:,} studies, {instances_:,} instances")
    return True


def run(label: str, url: str, n: int, instances: int, repeat: int, show_plan: bool) -> None:
    config = parse(f'[database]\nurl = "{url}"\n')
    db = Database(url)
    migrate.upgrade(db.engine)
    if _filled(db, n, instances):
        print(f"{label}: the kept {n:,} studies")
    else:
        started = time.perf_counter()
        fill(db, n, instances)
        print(f"{label}: {n:,} studies filled in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as folder:
        storage = FileStorage("fs1", folder)
        indexer = LocalIndexer(db)
        services = ServiceContext(config, db, storage, EventBus(), indexer)
        print(
            f"  {'search':<22}{'matches':>9}{'count':>9}{'first':>9}{'middle':>9}"
            f"{'last':>9}{'next':>9}"
        )
        for name, form in SEARCHES.items():
            count_ms, total = _ms(lambda f=form: q.count(services, f.query(config)), repeat)
            total = int(total)  # type: ignore[arg-type]
            last_offset = max(0, (total - 1) // PAGE * PAGE)
            middle_offset = total // 2 // PAGE * PAGE
            pages, middle = [], None
            for offset in (0, middle_offset, last_offset):
                ms, shown = _ms(
                    lambda f=form, o=offset, t=total: studies.search(
                        services, f, offset=o, limit=PAGE, total=t
                    ),
                    repeat,
                )
                pages.append(ms)
                middle = shown if offset == middle_offset else middle
            # The page after the middle one, as `]` turns it: a seek from the page shown.
            ms, _ = _ms(
                lambda f=form, t=total, m=middle, o=middle_offset + PAGE: studies.search(
                    services, f, offset=o, limit=PAGE, total=t, near=m
                ),
                repeat,
            )
            pages.append(ms)
            print(
                f"  {name:<22}{total:>9,}{count_ms:>7.1f}ms"
                + "".join(f"{ms:>7.1f}ms" for ms in pages)
            )
        if show_plan:
            print("  plan of the first page of all studies:")
            print(plan(services, SEARCHES["all studies"]))
        indexer.close()
    db.dispose()


def _kept_schema(url: str) -> str:
    """The PostgreSQL schema --keep reuses, created when missing; the URL that uses it."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {KEPT_SCHEMA}"))
    engine.dispose()
    return f"{url}{'&' if '?' in url else '?'}options=-csearch_path%3D{KEPT_SCHEMA}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=100_000)
    parser.add_argument("--instances", type=int, default=1_000_000)
    parser.add_argument("--postgres", default=PG_URL, help="PostgreSQL URL ('' to skip)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per figure (median)")
    parser.add_argument("--plan", action="store_true", help="print the first page's plan")
    parser.add_argument("--keep", type=Path, help="keep (and reuse) the databases: a folder")
    args = parser.parse_args()
    sizes = (args.studies, args.instances, args.repeat, args.plan)
    print("count: the search's count; pages: one page of 50 of that search; medians")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        run("SQLite", f"sqlite:///{args.keep.resolve()}/archive.db", *sizes)
    else:
        with tempfile.TemporaryDirectory() as folder:
            run("SQLite", f"sqlite:///{folder}/archive.db", *sizes)
    if args.postgres:
        url = _kept_schema(args.postgres) if args.keep else fresh_schema(args.postgres)
        run("PostgreSQL", url, *sizes)


if __name__ == "__main__":
    main()
