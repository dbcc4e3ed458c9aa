"""C-FIND latency: study-level queries on one open association against `pacs-console serve`
with N studies indexed (default 10,000: 2 series x 3 CT instances each, 2 studies per
patient on average, study dates over ten years).

The index is filled through the ingest code's own conversions (attribute filters to DICOM
JSON from parsed headers, index columns from that JSON) with bulk Core inserts, so rows
look exactly as C-STORE leaves them, without storing 60,000 files. The SCU is the
archive's own association code (TCP_NODELAY, no polling), so the figures are the server's.

    python bench/find_latency.py [--studies N] [--queries N] [--postgres URL]
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import time
from datetime import date, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import Any

from common import OUT, fresh_schema, start_archive
from pydicom import Dataset, dcmread
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid
from pynetdicom.dsutils import encode
from sqlalchemy import create_engine, insert

from core.db import migrate
from core.db.columns import instance_columns, patient_columns, series_columns, study_columns
from core.db.models import Instance, Location, LocationStatus, Patient, Series, Study
from core.dicom import attributes as attrs
from core.dicom.uids import EXPLICIT_VR_LE, STUDY_ROOT_FIND
from core.net import dimse
from core.net.scu import associate
from core.storage.filesystem import layout

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
SERIES_PER_STUDY = 2
INSTANCES_PER_SERIES = 3
FIRST_DAY = date(2016, 1, 1)
DAYS = 3652
BATCH = 2000


def _header(patient: dict[str, str], study: dict[str, str], series_no: int) -> Dataset:
    """A CT header as a modality sends it, parsed back from bytes as ingest parses it."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = study["uid"]
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.IssuerOfPatientID = "HOSP"
    ds.PatientBirthDate = patient["birth"]
    ds.PatientSex = patient["sex"]
    ds.StudyDate = study["date"]
    ds.StudyTime = study["time"]
    ds.AccessionNumber = study["accession"]
    ds.StudyID = study["id"]
    ds.StudyDescription = study["description"]
    ds.ReferringPhysicianName = "SMITH^ANNA"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.InstitutionName = "General Hospital"
    ds.StationName = "CT01"
    ds.SeriesNumber = series_no
    ds.SeriesDescription = "Axial" if series_no == 1 else "Coronal"
    ds.BodyPartExamined = "CHEST"
    ds.InstanceNumber = 1
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ContentDate = study["date"]
    ds.ContentTime = study["time"]
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated, ds.BitsStored = 16, 12
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    raw = encode(ds, False, True)
    assert raw is not None
    return dcmread(BytesIO(raw), force=True)


def populate(url: str, studies: int, seed: int = 1) -> list[str]:
    """Index `studies` studies; returns the Patient IDs."""
    rng = random.Random(seed)
    engine = create_engine(url)
    migrate.upgrade(engine)
    tables = {m: m.__table__ for m in (Patient, Study, Series, Instance, Location)}
    rows: dict[Any, list[dict[str, Any]]] = {m: [] for m in tables}
    now = datetime.now()
    patient_ids: list[str] = []
    pk = {m: 0 for m in tables}

    def add(model: Any, row: dict[str, Any]) -> int:
        pk[model] += 1
        rows[model].append({"pk": pk[model], "created": now, **row})
        return pk[model]

    def flush(conn: Any) -> None:
        for model in (Patient, Study, Series, Instance, Location):
            if rows[model]:
                conn.execute(insert(tables[model]), rows[model])
                rows[model].clear()

    made = 0
    with engine.begin() as conn:
        while made < studies:
            patient = {
                "id": f"PID{len(patient_ids) + 1:07d}",
                "name": f"{rng.choice(FAMILY)}^{rng.choice(GIVEN)}",
                "birth": f"{date(1930, 1, 1) + timedelta(days=rng.randrange(32000)):%Y%m%d}",
                "sex": rng.choice("MF"),
            }
            patient_ids.append(patient["id"])
            patient_pk = None
            for _ in range(min(rng.randint(1, 3), studies - made)):
                made += 1
                day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
                study = {
                    "uid": generate_uid(),
                    "date": day.strftime("%Y%m%d"),
                    "time": f"{rng.randint(7, 19):02d}{rng.randint(0, 59):02d}00",
                    "accession": f"A{made:08d}",
                    "id": str(made),
                    "description": rng.choice(DESCRIPTIONS),
                }
                study_pk = None
                for series_no in range(1, SERIES_PER_STUDY + 1):
                    ds = _header(patient, study, series_no)
                    if patient_pk is None:
                        level = attrs.to_json(ds, attrs.PATIENT)
                        patient_pk = add(
                            Patient,
                            {"attrs": attrs.dumps(level), "updated": now, **patient_columns(level)},
                        )
                    if study_pk is None:
                        level = attrs.to_json(ds, attrs.STUDY)
                        study_pk = add(
                            Study,
                            {
                                "patient_fk": patient_pk,
                                "study_iuid": study["uid"],
                                "attrs": attrs.dumps(level),
                                "updated": now,
                                **study_columns(level),
                            },
                        )
                    level = attrs.to_json(ds, attrs.SERIES)
                    series_pk = add(
                        Series,
                        {
                            "study_fk": study_pk,
                            "series_iuid": ds.SeriesInstanceUID,
                            "source_aet": "MODALITY1",
                            "attrs": attrs.dumps(level),
                            "updated": now,
                            **series_columns(level),
                        },
                    )
                    template = attrs.to_json(ds, attrs.INSTANCE)
                    for number in range(1, INSTANCES_PER_SERIES + 1):
                        sop_uid = generate_uid()
                        level = {
                            **template,
                            attrs.key(0x00080018): {"vr": "UI", "Value": [sop_uid]},
                            attrs.key(0x00200013): {"vr": "IS", "Value": [number]},
                        }
                        instance_pk = add(
                            Instance,
                            {
                                "series_fk": series_pk,
                                "sop_iuid": sop_uid,
                                "source_aet": "MODALITY1",
                                "attrs": attrs.dumps(level),
                                "updated": now,
                                **instance_columns(level),
                            },
                        )
                        add(
                            Location,
                            {
                                "instance_fk": instance_pk,
                                "storage_id": "fs1",
                                "storage_path": layout(
                                    now, study["uid"], ds.SeriesInstanceUID, sop_uid
                                ),
                                "size": 525_000,
                                "digest": f"{instance_pk:032x}",
                                "transfer_syntax_uid": ExplicitVRLittleEndian,
                                "status": LocationStatus.OK,
                            },
                        )
            if len(rows[Instance]) >= BATCH:
                flush(conn)
        flush(conn)
        if engine.dialect.name == "postgresql":
            # The keys were given explicitly: move the sequences past them.
            for table in tables.values():
                conn.exec_driver_sql(
                    f"SELECT setval(pg_get_serial_sequence('{table.name}', 'pk'), "
                    f"(SELECT max(pk) FROM {table.name}))"
                )
            conn.exec_driver_sql("ANALYZE")
    engine.dispose()
    return patient_ids


def identifier(**keys: str) -> bytes:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    for keyword in (
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "PatientName",
        "PatientID",
        "StudyDescription",
        "ModalitiesInStudy",
        "NumberOfStudyRelatedInstances",
    ):
        setattr(ds, keyword, keys.get(keyword, ""))
    raw = encode(ds, False, True)
    assert raw is not None
    return raw


def c_find(assoc: Any, ctx_id: int, raw: bytes) -> int:
    """One C-FIND, all responses read; the number of matches."""
    assoc.send_command(
        ctx_id,
        dimse.encode(
            [
                (dimse.AFFECTED_SOP_CLASS_UID, STUDY_ROOT_FIND),
                (dimse.COMMAND_FIELD, dimse.C_FIND_RQ),
                (dimse.MESSAGE_ID, assoc.next_message_id()),
                (dimse.PRIORITY, 0),
                (dimse.COMMAND_DATA_SET_TYPE, 0),
            ]
        ),
    )
    assoc.send_data(ctx_id, raw)
    matches = 0
    while True:
        _, response = assoc.receive_command()
        if response.has_dataset:
            assoc.receive_dataset()
        status = response.us(dimse.STATUS)
        if status == 0xFF00:
            matches += 1
        elif status == 0x0000:
            return matches
        else:
            raise RuntimeError(f"C-FIND failed: {status:04X} {response.text(dimse.ERROR_COMMENT)}")


def measure(port: int, patient_ids: list[str], queries: int) -> None:
    rng = random.Random(2)
    assoc = associate("127.0.0.1", port, "BENCH", "DCM4CHEE", [(STUDY_ROOT_FIND, [EXPLICIT_VR_LE])])
    (ctx_id,) = assoc.contexts

    def month() -> str:
        start = FIRST_DAY + timedelta(days=rng.randrange(DAYS - 31))
        end = start + timedelta(days=30)
        return f"{start:%Y%m%d}-{end:%Y%m%d}"

    cases = {
        "exact PatientID": lambda: identifier(PatientID=rng.choice(patient_ids)),
        "PatientName DOE*": lambda: identifier(PatientName="DOE*"),
        "StudyDate 31-day range": lambda: identifier(StudyDate=month()),
    }
    print(f"{'query':<24} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8} {'matches':>9}")
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
        print(
            f"{name:<24} {statistics.median(times):8.2f} {times[int(len(times) * 0.95)]:8.2f} "
            f"{statistics.fmean(times):8.2f} {statistics.median(matches):9.0f}"
        )
    assoc.release()


def drop_schema(admin_url: str, url: str) -> None:
    """Remove the schema that fresh_schema() made for this run."""
    schema = url.rsplit("search_path%3D", 1)[1]
    engine = create_engine(admin_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--postgres", metavar="URL", help="also measure on this PostgreSQL")
    args = parser.parse_args()
    targets = {"SQLite": None}
    if args.postgres:
        targets["PostgreSQL"] = args.postgres
    for name, pg_url in targets.items():
        workdir = OUT / "find_latency" / name.lower()
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        url = fresh_schema(pg_url) if pg_url else f"sqlite:///{workdir / 'index.db'}"
        try:
            run(name, url, workdir, args.studies, args.queries)
        finally:
            if pg_url:
                drop_schema(pg_url, url)


def run(name: str, url: str, workdir: Path, studies: int, queries: int) -> None:
    """Fill the index at `url`, serve it, measure, print."""
    start = time.perf_counter()
    patient_ids = populate(url, studies)
    print(
        f"\n{name}: {studies} studies, {len(patient_ids)} patients, "
        f"{studies * SERIES_PER_STUDY * INSTANCES_PER_SERIES} instances indexed "
        f"in {time.perf_counter() - start:.0f} s; study-level C-FIND, 9 return keys, "
        f"{queries} queries each on one association"
    )
    peer = start_archive(workdir / "serve", url)
    try:
        measure(peer.port, patient_ids, queries)
    finally:
        peer.stop()


if __name__ == "__main__":
    main()
