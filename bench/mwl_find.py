"""Modality Worklist C-FIND latency: `findscu -W` as a modality runs it (a date range, its
modality and its station AE title) against `pacs-console serve` with N worklist items
(default 10,000) and DCMTK's `wlmscpfs` serving the same items as worklist files, in the
same run, queries interleaved; on SQLite and on PostgreSQL (console_paging.PG_URL, or
--postgres URL; '' skips it).

The items are made through core.services.worklist (one transaction), then each is written
with pydicom as a .wl file (its patient's attributes and the item's, as the archive
returns them) into a folder named after the called AE title, which wlmscpfs reads on
every query. Every item has a status the default `[mwl] hide_statuses` shows, so both
serve the same matches. Each figure is the wall time of one `findscu -W` run (process
start, association, query, release), TCP_NODELAY=1 for both.

    python bench/mwl_find.py [--items N] [--queries N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import random
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from common import DCMTK, ENV, OUT, bind_shim, free_port, fresh_schema, serve, stop, wait_port
from console_paging import PG_URL
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from core.archive import Archive
from core.config import parse
from core.dicom.uids import MODALITY_WORKLIST_FIND
from core.services import patients, worklist
from core.services.context import ServiceContext
from core.services.patients import Demographics
from core.services.worklist import ItemForm, WorklistSearch

CALLED = "WORKLIST"
MODALITIES = {"CT": 4, "MR": 3, "CR": 3, "US": 2, "DX": 2}
FIRST_DAY = date(2026, 12, 1)
DAYS = 60
STATUSES = ["SCHEDULED"] * 8 + ["ARRIVED", "READY"]
FAMILY = ["SMITH", "JONES", "BROWN", "TAYLOR", "WILSON", "MUELLER", "SCHMIDT", "DOE", "KING"]
GIVEN = ["JOHN", "JANE", "MARY", "PETER", "ANNA", "PAUL", "LAURA", "MAX", "EVA", "TOM"]


def stations() -> list[tuple[str, str]]:
    """(modality, station AE title) of every scheduled station."""
    return [(m, f"{m}_{n + 1:02d}") for m, count in MODALITIES.items() for n in range(count)]


def config_text(workdir: Path, port: int, db_url: str | None) -> str:
    database = db_url or f"sqlite:///{workdir / 'archive.db'}"
    return (
        f'[database]\nurl = "{database}"\n[storage]\npath = "{workdir / "fs1"}"\n'
        f'[[ae]]\ntitle = "{CALLED}"\nhost = "127.0.0.1"\nport = {port}\n'
        'services = ["mwl", "mpps", "ups"]\n'
    )


def fill(workdir: Path, config: str, items: int, wl_folder: Path, seed: int = 1) -> float:
    """Make `items` MWL items (about two per patient) in the archive's database, and the
    same items as worklist files in `wl_folder`; returns the seconds the database took."""
    archive = Archive(parse(config))
    services = archive.open()
    rng = random.Random(seed)
    scheduled = stations()
    try:
        started = time.perf_counter()
        patient_count = max(1, items // 2)
        for n in range(patient_count):
            patients.create(
                services,
                Demographics(
                    name=f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}",
                    patient_id=f"PID{n + 1:07d}",
                    birth_date=f"{date(1930, 1, 1) + timedelta(days=rng.randrange(32000)):%Y%m%d}",
                    sex=rng.choice("MF"),
                ),
            )
        with services.db.write() as session:
            for _ in range(items):
                modality, station = rng.choice(scheduled)
                day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
                hour, minute = rng.randint(7, 18), rng.choice((0, 15, 30, 45))
                worklist.create_item(
                    session,
                    ItemForm(
                        patient_id=f"PID{rng.randrange(patient_count) + 1:07d}",
                        modality=modality,
                        station_aets=station,
                        sps_start_date=f"{day:%Y%m%d}",
                        sps_start_time=f"{hour:02d}{minute:02d}00",
                        sps_status=rng.choice(STATUSES),
                        sps_description=f"{modality} examination",
                        requested_procedure_description=f"{modality} procedure",
                        performing_physician="SMITH^ANNA",
                    ),
                )
        seconds = time.perf_counter() - started
        write_worklist_files(services, wl_folder)
        return seconds
    finally:
        archive.stop()


def write_worklist_files(services: ServiceContext, folder: Path) -> None:
    """Every item as a .wl file (Part 10, Explicit VR LE) in `folder`, with the lockfile
    wlmscpfs expects there."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "lockfile").touch()
    every = WorklistSearch(sps_status="*")
    page = None
    offset = 0
    while True:
        total = page.total if page else None
        page = worklist.search(services, every, offset=offset, limit=1000, total=total, near=page)
        for row in page.rows:
            ds = worklist.to_dataset(worklist.item_attributes(services, row.pk))
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MODALITY_WORKLIST_FIND
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.file_meta = meta
            ds.save_as(folder / f"item{row.pk:06d}.wl", enforce_file_format=True)
        offset += len(page.rows)
        if not page.rows or offset >= page.total:
            return


@dataclass
class Server:
    name: str
    port: int
    proc: subprocess.Popen


def start_wlmscpfs(root: Path) -> Server:
    """DCMTK's wlmscpfs on the worklist files under `root` (one folder per called AE),
    forking per association as it is run in practice."""
    port = free_port()
    proc = subprocess.Popen(
        [str(DCMTK / "wlmscpfs"), "-dfp", str(root), str(port)],
        env={**ENV, "LD_PRELOAD": str(bind_shim())},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_port(port, proc)
    return Server("wlmscpfs", port, proc)


_PENDING = re.compile(r"^I: Find Response: \d+ \(Pending\)", re.MULTILINE)


def findscu_w(port: int, keys: list[str]) -> tuple[float, int]:
    """One `findscu -W` run; its wall time (ms) and the number of matches."""
    args = [str(DCMTK / "findscu"), "-v", "-W", "-aet", "MODALITY1", "-aec", CALLED]
    for key in keys:
        args += ["-k", key]
    started = time.perf_counter()
    proc = subprocess.run([*args, "127.0.0.1", str(port)], env=ENV, capture_output=True)
    elapsed = (time.perf_counter() - started) * 1000
    log = proc.stdout.decode("utf-8", "replace") + proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0 or "Final Find Response (Success)" not in log:
        raise RuntimeError(f"findscu -W on port {port} failed:\n{log[-2000:]}")
    return elapsed, len(_PENDING.findall(log))


def query(rng: random.Random) -> list[str]:
    """A modality's query: a three-day window of its station's schedule."""
    modality, station = rng.choice(stations())
    start = FIRST_DAY + timedelta(days=rng.randrange(DAYS - 2))
    sps = "ScheduledProcedureStepSequence[0]."
    return [
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "RequestedProcedureID",
        "RequestedProcedureDescription",
        "StudyInstanceUID",
        f"{sps}Modality={modality}",
        f"{sps}ScheduledStationAETitle={station}",
        f"{sps}ScheduledProcedureStepStartDate={start:%Y%m%d}-{start + timedelta(days=2):%Y%m%d}",
        f"{sps}ScheduledProcedureStepStartTime",
        f"{sps}ScheduledProcedureStepID",
        f"{sps}ScheduledProcedureStepStatus",
        f"{sps}ScheduledProcedureStepDescription",
        f"{sps}ScheduledPerformingPhysicianName",
    ]


def measure(servers: list[Server], queries: int) -> dict[str, tuple[float, float, float]]:
    """p50 and p90 (ms) and the median match count per server, queries interleaved (the
    same query to each, in alternating order)."""
    rng = random.Random(2)
    times: dict[str, list[float]] = {s.name: [] for s in servers}
    matches: dict[str, list[int]] = {s.name: [] for s in servers}
    for _ in range(5):  # warm-up: page cache, statement cache
        keys = query(rng)
        for server in servers:
            findscu_w(server.port, keys)
    for n in range(queries):
        keys = query(rng)
        found = {}
        for server in servers if n % 2 == 0 else servers[::-1]:
            elapsed, count = findscu_w(server.port, keys)
            times[server.name].append(elapsed)
            matches[server.name].append(count)
            found[server.name] = count
        if len(set(found.values())) != 1:
            raise RuntimeError(f"servers disagree on {keys}: {found}")
    out = {}
    for name, values in times.items():
        values.sort()
        out[name] = (
            statistics.median(values),
            values[int(len(values) * 0.9)],
            statistics.median(matches[name]),
        )
    return out


Figures = dict[str, tuple[float, float, float]]


def run(items: int, queries: int, db_url: str | None, label: str) -> Figures:
    """Fill the archive (on `db_url`, SQLite when None) and wlmscpfs's folder with `items`
    items, then time `queries` queries against both; {server: (p50, p90, matches)}."""
    workdir = OUT / "work" / f"mwl-{label}"
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.mkdir(parents=True)
    port = free_port()
    config = config_text(workdir, port, db_url)
    (workdir / "config.toml").write_text(config)
    wl_root = workdir / "wlmscpfs"
    seconds = fill(workdir, config, items, wl_root / CALLED)
    print(f"  {label}: {items} items made in {seconds:.1f} s")
    archive = Server("pacs-console", port, serve(workdir / "config.toml"))
    wlm = start_wlmscpfs(wl_root)
    try:
        return measure([archive, wlm], queries)
    finally:
        stop(archive.proc)
        stop(wlm.proc)


def run_all(items: int, queries: int, postgres: str = PG_URL) -> list[tuple[str, Figures]]:
    """The figures on SQLite, then on PostgreSQL (a fresh schema at `postgres`) unless
    it is ''."""
    found = [("SQLite", run(items, queries, None, "sqlite"))]
    if postgres:
        found.append(("PostgreSQL", run(items, queries, fresh_schema(postgres), "postgresql")))
    return found


def report(results: list[tuple[str, Figures]], items: int) -> None:
    """Print p50/p90 per server and database, and pacs-console's ratio to wlmscpfs."""
    print(f"\nMWL C-FIND, findscu -W (date range + modality + station AE), {items} items")
    print(f"{'database':<12} {'server':<14} | {'p50 ms':>8} | {'p90 ms':>8} | matches (median)")
    for label, figures in results:
        for name, (p50, p90, found) in figures.items():
            print(f"{label:<12} {name:<14} | {p50:>8.1f} | {p90:>8.1f} | {found:g}")
        ratio = figures["pacs-console"][0] / figures["wlmscpfs"][0]
        print(f"{label:<12} pacs-console / wlmscpfs (p50): {ratio:.2f}x (target <= 1.0x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--postgres", default=PG_URL, help="PostgreSQL URL ('' to skip)")
    args = parser.parse_args()
    report(run_all(args.items, args.queries, args.postgres), args.items)


if __name__ == "__main__":
    main()
