"""C-MOVE throughput: one study moved from an in-process archive to DCMTK's storescp.

    python bench/move_throughput.py [--instances 200] [--size 64] [--runs 3] [--db URL]

The study is stored with DCMTK's storescu, then moved with DCMTK's movescu (Study Root,
STUDY level) to storescp on 127.0.0.1 (started with tests/tools/bind_localhost.c
preloaded). Each run is timed from movescu's start to its exit; prints instances/s and
MB/s of every run and the best. Needs gcc and Debian's dcmtk.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.archive import Archive  # noqa: E402
from core.config import parse  # noqa: E402
from tests import dicomgen  # noqa: E402
from tests.conftest import archive_port, free_port, make_config_text  # noqa: E402

DCMTK = Path("/usr/bin")
ENV = {**os.environ, "TCP_NODELAY": "1"}


def _storescp(work: Path, port: int) -> subprocess.Popen[bytes]:
    shim = work / "bind_localhost.so"
    source = ROOT / "tests" / "tools" / "bind_localhost.c"
    subprocess.run(
        ["gcc", "-shared", "-fPIC", "-O2", "-o", str(shim), str(source), "-ldl"], check=True
    )
    (work / "received").mkdir()
    proc = subprocess.Popen(
        [str(DCMTK / "storescp"), "-aet", "STORESCP", "-od", str(work / "received"), str(port)],
        env={**ENV, "LD_PRELOAD": str(shim)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while f"0100007F:{port:04X}" not in Path("/proc/net/tcp").read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("storescp did not start listening on 127.0.0.1")
        time.sleep(0.02)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--size", type=int, default=64, help="rows = columns (16-bit pixels)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", help="database URL (default: SQLite in the work folder)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    work = Path(tempfile.mkdtemp(prefix="move-bench-"))
    dest_port = free_port()
    extra = f'[[remote_ae]]\ntitle = "STORESCP"\nhost = "127.0.0.1"\nport = {dest_port}\n'
    db = args.db or f"sqlite:///{work / 'archive.db'}"
    archive = Archive(parse(make_config_text(work, db, free_port(), extra)))
    archive.start()
    storescp = _storescp(work, dest_port)
    try:
        study_uid, datasets = dicomgen.study(
            work / "study", series=1, instances=args.instances, size=args.size
        )
        archive_at = ["127.0.0.1", str(archive_port(archive))]
        store = ["-aet", "ACME1", "-aec", "DCM4CHEE", "+sd", *archive_at, str(work / "study")]
        subprocess.run([str(DCMTK / "storescu"), *store], env=ENV, check=True)
        megabytes = sum(p.stat().st_size for p in (work / "study").iterdir()) / 1e6
        print(
            f"{args.instances} instances of {args.size}x{args.size} ({megabytes:.1f} MB), "
            f"database {db.split(':')[0]}"
        )
        move = ["-S", "-aec", "DCM4CHEE", "-aet", "ACME1", "-aem", "STORESCP"]
        move += ["-k", "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={study_uid}"]
        move += archive_at
        rates = []
        for run in range(1, args.runs + 1):
            shutil.rmtree(work / "received")
            (work / "received").mkdir()
            started = time.perf_counter()
            subprocess.run([str(DCMTK / "movescu"), *move], env=ENV, check=True)
            seconds = time.perf_counter() - started
            arrived = len(list((work / "received").iterdir()))
            if arrived != len(datasets):
                raise SystemExit(f"run {run}: {arrived} of {len(datasets)} instances arrived")
            rates.append(args.instances / seconds)
            print(
                f"run {run}: {seconds:.3f} s, {rates[-1]:.0f} instances/s, "
                f"{megabytes / seconds:.1f} MB/s"
            )
        print(f"best: {max(rates):.0f} instances/s")
    finally:
        storescp.terminate()
        storescp.wait()
        archive.stop(grace=5)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
