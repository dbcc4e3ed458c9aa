"""Export throughput: one study (default 1,000 CT instances, 512x512 16-bit) stored in
`pacs-console serve`, exported by the archive's exporters and sent by DCMTK's `storescu
+sd` from the same stored files, to the same peers in the same run, as ratios:

- to DCMTK storescp (one for the run; `--fork --ignore`: it receives every object and
  writes none, so the figures are the senders'): storescu +sd (the reference), the
  `dicom` exporter (core.services.export.export, called in this process as the console's
  synchronous export does) and the same export as a task of the Export queue run by
  `serve`, timed from scheduling to COMPLETED;
- to Orthanc with its DICOMweb plugin (a fresh one, storage on disk, per measurement):
  storescu +sd over C-STORE (the reference), and the `stow-rs` exporter, direct and queued.

The archive is built once (the study stored over C-STORE through its own SCP, so files
and index are real) and kept in `--keep DIR` for later runs, or in a folder deleted at
the end. Each round runs every sender once, in turn (the order rotates between rounds);
figures are medians, and the ratio to the reference is also given per round.

    python bench/export_throughput.py [--instances N] [--size N] [--repeat N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from statistics import median

import httpx
from common import (
    OUT,
    Peer,
    ct_series,
    free_port,
    orthanc_binary,
    serve,
    split,
    start_orthanc,
    start_storescp,
    stop,
    storescu,
)
from pydicom import dcmread

from core.archive import Archive
from core.config import load
from core.services import outbound, tasks
from core.services.context import ServiceContext
from core.services.export import export, instances_to_export

ARCHIVE_AE = "DCM4CHEE"
TO_STORESCP = "TO_STORESCP"
TO_ORTHANC = "TO_ORTHANC"
DONE = {
    tasks.TaskStatus.COMPLETED,
    tasks.TaskStatus.WARNING,
    tasks.TaskStatus.FAILED,
    tasks.TaskStatus.CANCELED,
}


@dataclass
class Study:
    """The stored study: its UID, and a folder of links to its stored files (in series
    and instance order) for storescu +sd."""

    uid: str
    instances: int
    files: Path


def write_config(
    folder: Path, archive_port: int, storescp_port: int, orthanc_http: int | None
) -> Path:
    """The archive's config.toml (database and storage in `folder`, the peers of this
    run and an exporter to each)."""
    text = (
        f'[database]\nurl = "sqlite:///{folder / "archive.db"}"\n'
        f'[storage]\nid = "fs1"\npath = "{folder / "fs1"}"\n'
        f'[[ae]]\ntitle = "{ARCHIVE_AE}"\nhost = "127.0.0.1"\nport = {archive_port}\n'
        f'[[remote_ae]]\ntitle = "STORESCP"\nhost = "127.0.0.1"\nport = {storescp_port}\n'
        f'[[exporter]]\nid = "{TO_STORESCP}"\nkind = "dicom"\ndestination = "STORESCP"\n'
    )
    if orthanc_http is not None:
        text += (
            f'[[web_app]]\nname = "ORTHANC_WEB"\n'
            f'url = "http://127.0.0.1:{orthanc_http}/dicom-web"\n'
            f'[[exporter]]\nid = "{TO_ORTHANC}"\nkind = "stow-rs"\ndestination = "ORTHANC_WEB"\n'
        )
    config = folder / "config.toml"
    config.write_text(text)
    return config


def build(folder: Path, config: Path, port: int, instances: int, size: int) -> str:
    """Store a new study of `instances` CT images (size x size, two series) into the
    archive in `folder` through its C-STORE SCP (storescu, 4 associations), unless the
    one stored by an earlier run has that shape; returns its Study Instance UID."""
    marker = folder / "study.json"
    shape = {"instances": instances, "size": size}
    if marker.exists():
        known = json.loads(marker.read_text())
        if {k: known.get(k) for k in shape} == shape:
            return known["uid"]
    for stale in ("archive.db", "archive.db-wal", "archive.db-shm", "fs1", "study.json"):
        path = folder / stale
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    print(f"building the archive: {instances} instances {size}x{size} in {folder}")
    data = folder / "generated"
    files = ct_series(data, instances, size, 1, 2, seed=5)
    uid = dcmread(files[0], stop_before_pixels=True).StudyInstanceUID
    proc = serve(config)
    try:
        storescu(port, ARCHIVE_AE, split(files, 4, folder / "split"))
    finally:
        stop(proc)
    shutil.rmtree(data)
    shutil.rmtree(folder / "split")
    marker.write_text(json.dumps({**shape, "uid": uid}))
    return uid


def stored_study(ctx: ServiceContext, uid: str, folder: Path) -> Study:
    """Links to the study's stored files, read back from the index; their pages are read
    once so that no sender pays for the first read from disk."""
    found = instances_to_export(ctx, ARCHIVE_AE, uid)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    for i, inst in enumerate(found):
        (folder / f"{i:05d}.dcm").symlink_to(inst.path)
        inst.path.read_bytes()
    return Study(uid, len(found), folder)


def direct_export(ctx: ServiceContext, exporter_id: str, study: Study) -> float:
    """The exporter called directly (core.services.export.export); seconds."""
    start = time.perf_counter()
    result = export(ctx, exporter_id, study.uid)
    seconds = time.perf_counter() - start
    if result.status != "COMPLETED" or result.completed != study.instances:
        raise RuntimeError(f"export with {exporter_id}: {result.status}: {result.message}")
    return seconds


def queued_export(ctx: ServiceContext, exporter_id: str, study: Study) -> dict[str, float]:
    """The export through the queue: an Export task of type `export` scheduled here (as
    an attached console does) and run by `serve`, timed from scheduling to COMPLETED.
    Also its run alone (started to ended: without the wait of up to a second until the
    serving node's runner looks for due tasks)."""
    start = time.perf_counter()
    _, (pk,) = outbound.schedule_export(ctx, exporter_id, [outbound.Entity(study.uid)])
    while True:
        row = tasks.get(ctx, pk)
        if row is None:
            raise RuntimeError(f"export task {pk} is gone")
        if row.status in DONE or row.status == tasks.TaskStatus.SCHEDULED_FOR_RETRY:
            break
        time.sleep(0.005)
    seconds = time.perf_counter() - start
    if row.status != tasks.TaskStatus.COMPLETED or row.completed != study.instances:
        raise RuntimeError(
            f"export task {pk} with {exporter_id}: {row.status}: "
            f"{row.error_message or row.outcome_message}"
        )
    assert row.started_time is not None and row.ended_time is not None
    run = (row.ended_time - row.started_time).total_seconds()
    return {"": seconds, " (run only)": run}


# A sender sends the study to a peer once: seconds, or seconds per row (suffix -> s).
Sender = Callable[[Peer], "float | dict[str, float]"]
Rounds = dict[str, list[float]]


def measure(
    target: str,
    start: Callable[[], Peer],
    fresh: bool,
    senders: dict[str, Sender],
    study: Study,
    repeat: int,
) -> Rounds:
    """`repeat` rounds of every sender in turn (the order rotated each round) to the peer
    `start()` gives, a fresh one for each sender if `fresh` (then stopped after it);
    seconds per row and round."""
    seconds: Rounds = {}
    names = list(senders)
    for round_ in range(repeat):
        order = names[round_ % len(names) :] + names[: round_ % len(names)]
        for name in order:
            # storescp and Orthanc never sync: their writeback is not the next one's to pay.
            os.sync()
            peer = start()
            try:
                got = senders[name](peer)
            finally:
                if fresh:
                    peer.stop()
            for suffix, value in (got if isinstance(got, dict) else {"": got}).items():
                seconds.setdefault(name + suffix, []).append(value)
                rate = study.instances / value
                print(f"  {target}, round {round_ + 1}, {name + suffix}: {rate:6.0f} inst/s")
    return seconds


def orthanc_sender(send: Callable[[Peer], float | dict[str, float]], study: Study) -> Sender:
    """`send`, then a check that Orthanc holds every instance (counted by its REST API)."""

    def sent(peer: Peer) -> float | dict[str, float]:
        got = send(peer)
        stats = httpx.get(f"http://127.0.0.1:{peer.http_port}/statistics", timeout=30).json()
        if stats["CountInstances"] != study.instances:
            raise RuntimeError(f"Orthanc holds {stats['CountInstances']} of {study.instances}")
        return got

    return sent


@dataclass
class Table:
    """The figures of one target: seconds per row and round, the reference's row."""

    title: str
    reference: str
    seconds: Rounds
    instances: int


def report(tables: list[Table]) -> None:
    """For every target, the median instances/s of every row, its ratio to the
    reference's median and the median and range of its per-round ratio to the reference."""
    for table in tables:
        report_table(table)


def report_table(table: Table) -> None:
    """One target's figures (see `report`)."""
    print(f"\n{table.title}")
    reference, seconds, instances = table.reference, table.seconds, table.instances
    ref = seconds[reference]
    for name, values in seconds.items():
        line = f"  {name:<34} {instances / median(values):7.0f} inst/s"
        if name != reference:
            rounds = [r / v for r, v in zip(ref, values, strict=True)]
            line += f"  {median(ref) / median(values):5.2f}x {reference}"
            if len(rounds) > 1:
                spread = f"{min(rounds):.2f}-{max(rounds):.2f}x"
                line += f" (rounds: median {median(rounds):.2f}x, {spread})"
        print(line)


def run(instances: int, size: int, repeat: int, keep: Path | None = None) -> list[Table]:
    """Build (or reuse) the archive, start the peers and `serve`, measure; the figures
    of each target."""
    OUT.mkdir(parents=True, exist_ok=True)
    folder = keep or Path(tempfile.mkdtemp(prefix="export-bench-", dir=OUT))
    folder.mkdir(parents=True, exist_ok=True)
    archive = folder / "archive"
    archive.mkdir(exist_ok=True)
    work = OUT / "work" / "export"
    shutil.rmtree(work, ignore_errors=True)
    storescp = start_storescp(work / "storescp", "--ignore")
    orthanc_ports = (free_port(), free_port()) if orthanc_binary() else None
    port = free_port()
    config = write_config(archive, port, storescp.port, orthanc_ports and orthanc_ports[1])
    proc = None
    ctx = None
    try:
        uid = build(archive, config, port, instances, size)
        proc = serve(config)
        ctx = Archive(load(config)).attach()
        study = stored_study(ctx, uid, work / "files")
        label = f"{study.instances} instances {size}x{size}"
        print(f"Export of one study ({label}), TCP_NODELAY=1")
        to_scp = measure(
            "storescp",
            lambda: storescp,
            False,
            {
                "storescu +sd": lambda p: storescu(p.port, p.called, [study.files]),
                "export dicom": lambda _p: direct_export(ctx, TO_STORESCP, study),
                "export dicom queued": lambda _p: queued_export(ctx, TO_STORESCP, study),
            },
            study,
            repeat,
        )
        to_orthanc = None
        if orthanc_ports is not None:
            count = iter(range(10**6))
            to_orthanc = measure(
                "orthanc",
                # A fresh Orthanc each time, its storage kept until the end: ext4 is slow
                # to create files right after a mass delete (see store_throughput.py).
                lambda: start_orthanc(
                    work / f"orthanc-{next(count)}", dicomweb=True, ports=orthanc_ports
                ),
                True,
                {
                    "storescu +sd (C-STORE)": orthanc_sender(
                        lambda p: storescu(p.port, p.called, [study.files]), study
                    ),
                    "export stow-rs": orthanc_sender(
                        lambda _p: direct_export(ctx, TO_ORTHANC, study), study
                    ),
                    "export stow-rs queued": orthanc_sender(
                        lambda _p: queued_export(ctx, TO_ORTHANC, study), study
                    ),
                },
                study,
                repeat,
            )
        tables = [Table(f"To DCMTK storescp ({label})", "storescu +sd", to_scp, study.instances)]
        if to_orthanc is not None:
            tables.append(
                Table(
                    f"To Orthanc with DICOMweb ({label})",
                    "storescu +sd (C-STORE)",
                    to_orthanc,
                    study.instances,
                )
            )
        else:
            print("Orthanc not installed: no STOW-RS figures")
        return tables
    finally:
        if ctx is not None:
            ctx.db.dispose()
        if proc is not None:
            stop(proc)
        storescp.stop()
        shutil.rmtree(work, ignore_errors=True)
        if keep is None:
            shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--size", type=int, default=512, help="rows = columns (16-bit pixels)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per figure (median)")
    parser.add_argument(
        "--keep", type=Path, metavar="DIR", help="keep the archive here and reuse it next time"
    )
    args = parser.parse_args()
    if args.repeat < 1 or args.instances < 1:
        parser.error("--repeat and --instances must be at least 1")
    report(run(args.instances, args.size, args.repeat, args.keep and args.keep.resolve()))


if __name__ == "__main__":
    main()
