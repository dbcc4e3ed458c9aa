"""C-FIND latency: study-level queries on one open association with N studies stored
(default 10,000; 1 to 3 studies per patient, study dates over ten years), against
`pacs-console serve` and, when installed, Orthanc, side by side.

Both are filled over C-STORE with the same generated studies (DCMTK storescu, 4
associations), then answer the same queries: exact PatientID, PatientName DOE* and a
31-day StudyDate range, 9 return keys. The SCU is the archive's own association code
(TCP_NODELAY, no polling), so the figures are the servers'.

    python bench/find_latency.py [--studies N] [--queries N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from common import (
    OUT,
    Peer,
    c_find,
    find_association,
    fresh_schema,
    orthanc_binary,
    split,
    start_archive,
    start_orthanc,
    storescu,
    study_identifier,
    write_ct,
)
from pydicom.dataset import Dataset
from pydicom.uid import CTImageStorage, generate_uid

FAMILY = [
    "SMITH", "JONES", "WILLIAMS", "BROWN", "TAYLOR", "DAVIES", "EVANS", "WILSON", "THOMAS",
    "JOHNSON", "ROBERTS", "ROBINSON", "THOMPSON", "WRIGHT", "WALKER", "WHITE", "EDWARDS",
    "HUGHES", "GREEN", "HALL", "LEWIS", "HARRIS", "CLARKE", "PATEL", "JACKSON", "WOOD",
    "TURNER", "MARTIN", "COOPER", "HILL", "WARD", "MORRIS", "MOORE", "CLARK", "LEE", "KING",
    "BAKER", "HARRISON", "MORGAN", "ALLEN", "JAMES", "SCOTT", "PHILLIPS", "WATSON", "DAVIS",
    "PARKER", "PRICE", "BENNETT", "YOUNG", "GRIFFITHS", "MITCHELL", "KELLY", "COOK", "CARTER",
    "RICHARDSON", "BAILEY", "COLLINS", "BELL", "SHAW", "MURPHY", "MILLER", "COX", "RICHARDS",
    "KHAN", "MARSHALL", "ANDERSON", "SIMPSON", "ELLIS", "ADAMS", "SINGH", "BEGUM", "WILKINSON",
    "FOSTER", "CHAPMAN", "POWELL", "WEBB", "ROGERS", "GRAY", "MASON", "ALI", "HUNT", "HUSSAIN",
    "CAMPBELL", "MATTHEWS", "OWEN", "PALMER", "HOLMES", "MILLS", "BARNES", "KNIGHT", "LLOYD",
    "BUTLER", "RUSSELL", "BARKER", "FISHER", "STEVENS", "JENKINS", "MURRAY", "DIXON",
    "HARVEY", "MUELLER", "SCHMIDT", "SCHNEIDER", "FISCHER", "WEBER", "MEYER", "WAGNER",
    "BECKER", "SCHULZ", "HOFFMANN", "DOE", "DOERING",
]  # fmt: skip
GIVEN = ["JOHN", "JANE", "MARY", "PETER", "ANNA", "PAUL", "LAURA", "MAX", "EVA", "TOM"]
DESCRIPTIONS = ["CT Chest", "CT Abdomen", "CT Head", "CT Thorax w/o", "CT Angio", "CT Spine"]
FIRST_DAY = date(2016, 1, 1)
DAYS = 3652


def corpus(folder: Path, studies: int, seed: int = 1) -> tuple[list[Path], list[str]]:
    """One small CT per study, written to `folder`; returns the files and Patient IDs."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files: list[Path] = []
    patient_ids: list[str] = []
    while len(files) < studies:
        patient_id = f"PID{len(patient_ids) + 1:07d}"
        patient_ids.append(patient_id)
        name = f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}"
        birth = f"{date(1930, 1, 1) + timedelta(days=rng.randrange(32000)):%Y%m%d}"
        sex = rng.choice("MF")
        for _ in range(min(rng.randint(1, 3), studies - len(files))):
            n = len(files) + 1
            ds = Dataset()
            ds.SpecificCharacterSet = "ISO_IR 100"
            ds.SOPClassUID = CTImageStorage
            ds.SOPInstanceUID = generate_uid()
            ds.StudyInstanceUID = generate_uid()
            ds.SeriesInstanceUID = generate_uid()
            ds.PatientName, ds.PatientID = name, patient_id
            ds.PatientBirthDate, ds.PatientSex = birth, sex
            ds.StudyDate = f"{FIRST_DAY + timedelta(days=rng.randrange(DAYS)):%Y%m%d}"
            ds.StudyTime = f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}00"
            ds.AccessionNumber, ds.StudyID = f"A{n:08d}", str(n)
            ds.StudyDescription = rng.choice(DESCRIPTIONS)
            ds.ReferringPhysicianName = "SMITH^ANNA"
            ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, 1
            files.append(write_ct(ds, 8, bytes(128), folder / f"{n:06d}.dcm"))
    return files, patient_ids


def measure(
    peer: Peer, patient_ids: list[str], queries: int
) -> dict[str, tuple[float, float, int]]:
    """p50 and p95 (ms) and the median match count of each query, on one association."""
    rng = random.Random(2)
    assoc, ctx_id = find_association(peer)

    def month() -> str:
        start = FIRST_DAY + timedelta(days=rng.randrange(DAYS - 31))
        return f"{start:%Y%m%d}-{start + timedelta(days=30):%Y%m%d}"

    cases: dict[str, Callable[[], bytes]] = {
        "exact PatientID": lambda: study_identifier(PatientID=rng.choice(patient_ids)),
        "PatientName DOE*": lambda: study_identifier(PatientName="DOE*"),
        "StudyDate 31-day range": lambda: study_identifier(StudyDate=month()),
    }
    figures = {}
    for name, make in cases.items():
        for _ in range(20):  # warm-up: statement cache, page cache
            c_find(assoc, ctx_id, make())
        times, matches = [], []
        for _ in range(queries):
            raw = make()
            start = time.perf_counter()
            matches.append(c_find(assoc, ctx_id, raw))
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        figures[name] = (
            statistics.median(times),
            times[int(len(times) * 0.95)],
            int(statistics.median(matches)),
        )
    assoc.release()
    return figures


def run(studies: int, queries: int, postgres: str | None = None) -> dict[str, dict]:
    """Fill each peer over C-STORE and measure it; returns {peer: {query: figures}}."""
    files, patient_ids = corpus(OUT / "data" / f"find{studies}", studies)
    dirs = split(files, 4, OUT / "split-find")
    starts: dict[str, Callable[[Path], Peer]] = {"pacs-console": start_archive}
    if postgres:
        starts["pacs-console (pg)"] = lambda w: start_archive(w, fresh_schema(postgres))
    if orthanc_binary():
        starts["orthanc"] = start_orthanc
    results = {}
    for name, start in starts.items():
        peer = start(OUT / "work" / f"find-{name}")
        try:
            seconds = storescu(peer.port, peer.called, dirs)
            print(f"  {name}: {studies} studies stored in {seconds:.0f} s")
            results[name] = measure(peer, patient_ids, queries)
        finally:
            peer.stop()
    return results


def report(results: dict[str, dict], studies: int) -> None:
    """Print p50/p95 per query and server, and pacs-console's ratio to Orthanc."""
    names = list(results)
    print(f"\nC-FIND study level, {studies} studies, one open association (ms)")
    head = f"{'query':<24}" + "".join(f" | {n + ' p50':>22} {'p95':>6}" for n in names)
    print(head + (" | pacs-console speed vs orthanc (p50)" if "orthanc" in results else ""))
    for case in results[names[0]]:
        line = f"{case:<24}"
        for name in names:
            p50, p95, matches = results[name][case]
            line += f" | {p50:>22.2f} {p95:>6.2f}"
        if "orthanc" in results:
            ratio = results["orthanc"][case][0] / results["pacs-console"][case][0]
            line += f" | {ratio:.2f}x"
        matches = {name: results[name][case][2] for name in names}
        print(f"{line}   (matches {matches})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--postgres", metavar="URL", help="also measure on this PostgreSQL")
    args = parser.parse_args()
    report(run(args.studies, args.queries, args.postgres), args.studies)


if __name__ == "__main__":
    main()
