"""Permanent deletion of a study, series or instance (dcm4chee's "Delete study
permanently"): files and rows, nothing orphaned; the patient is kept, as dcm4chee keeps it.

Instances go in batches, each batch its own transaction, so deleting 10,000 instances never
holds one long write lock (stores go on in between). A batch marks the locations of its
instances TO_DELETE and detaches them, and deletes the instance rows; once it committed,
the files are deleted, then the location rows. A crash in between leaves TO_DELETE
locations, which the start-up recovery deletes (core.services.recovery). Series and study
rows go last, and only when no instance is left in them: an object stored meanwhile keeps
its series and study. On PostgreSQL every transaction takes the study's lock that indexing
takes, so a store never adds to a series this deletion is removing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import Connection, Select, delete, exists, func, select, update

from core.db.models import Instance, Location, LocationStatus, Series, Study
from core.index.rules import LOCK
from core.services.context import ServiceContext

BATCH = 500

_study = Study.__table__
_series = Series.__table__
_instance = Instance.__table__
_location = Location.__table__


class NothingToDelete(LookupError):
    """The study, series or instance is not in the archive."""


@dataclass(frozen=True)
class Deleted:
    """What a deletion removed."""

    studies: int = 0
    series: int = 0
    instances: int = 0
    files: int = 0


@dataclass(frozen=True)
class _Scope:
    level: str
    study_iuid: str
    study_pk: int
    series_pks: list[int]
    instance_pk: int | None


def _scope(conn: Connection, level: str, uid: str) -> _Scope:
    if level == "STUDY":
        row = conn.execute(
            select(_study.c.pk, _study.c.study_iuid).where(_study.c.study_iuid == uid)
        ).first()
        if row is None:
            raise NothingToDelete(f"no study {uid}")
        series = conn.execute(select(_series.c.pk).where(_series.c.study_fk == row.pk)).scalars()
        return _Scope(level, row.study_iuid, row.pk, list(series), None)
    if level == "SERIES":
        row = conn.execute(
            select(_series.c.pk, _study.c.pk.label("study_pk"), _study.c.study_iuid)
            .join(_study, _series.c.study_fk == _study.c.pk)
            .where(_series.c.series_iuid == uid)
        ).first()
        if row is None:
            raise NothingToDelete(f"no series {uid}")
        return _Scope(level, row.study_iuid, row.study_pk, [row.pk], None)
    if level == "IMAGE":
        row = conn.execute(
            select(
                _instance.c.pk,
                _series.c.pk.label("series_pk"),
                _study.c.pk.label("study_pk"),
                _study.c.study_iuid,
            )
            .join(_series, _instance.c.series_fk == _series.c.pk)
            .join(_study, _series.c.study_fk == _study.c.pk)
            .where(_instance.c.sop_iuid == uid)
        ).first()
        if row is None:
            raise NothingToDelete(f"no instance {uid}")
        return _Scope(level, row.study_iuid, row.study_pk, [row.series_pk], row.pk)
    raise ValueError(f"unknown level {level!r}")


def _instances_of(scope: _Scope) -> Select:
    if scope.instance_pk is not None:
        return select(_instance.c.pk).where(_instance.c.pk == scope.instance_pk)
    if scope.level == "SERIES":
        return select(_instance.c.pk).where(_instance.c.series_fk == scope.series_pks[0])
    # A study: every series of it, those stored meanwhile included.
    return (
        select(_instance.c.pk)
        .join(_series, _instance.c.series_fk == _series.c.pk)
        .where(_series.c.study_fk == scope.study_pk)
    )


def _lock(conn: Connection, scope: _Scope) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(LOCK, {"k": "S" + scope.study_iuid})


def count_instances(services: ServiceContext, level: str, uid: str) -> int:
    """How many instances deleting the study, series or instance removes (rejected ones
    included: a deletion removes what every view shows)."""
    with services.db.read() as session:
        scope = _scope(session.connection(), level, uid)
        inner = _instances_of(scope).subquery()
        return int(session.execute(select(func.count()).select_from(inner)).scalar_one())


def _delete_batch(services: ServiceContext, scope: _Scope, batch: int) -> tuple[int, list]:
    """Delete the rows of up to `batch` instances; returns how many, and the (pk, path) of
    their locations (now TO_DELETE, detached) whose files are to go."""
    with services.db.write() as session:
        conn = session.connection()
        _lock(conn, scope)
        pks = list(conn.execute(_instances_of(scope).limit(batch)).scalars())
        if not pks:
            return 0, []
        doomed = conn.execute(
            select(_location.c.pk, _location.c.storage_id, _location.c.storage_path).where(
                _location.c.instance_fk.in_(pks)
            )
        ).all()
        conn.execute(
            update(_location)
            .where(_location.c.instance_fk.in_(pks))
            .values(status=LocationStatus.TO_DELETE, instance_fk=None)
        )
        conn.execute(delete(_instance).where(_instance.c.pk.in_(pks)))
        return len(pks), doomed


def _remove_files(services: ServiceContext, doomed: list) -> int:
    """Delete the files of TO_DELETE locations, then their rows; returns files deleted.
    Locations of another storage stay TO_DELETE for the node that has it."""
    storage = services.storage
    mine = [row for row in doomed if row.storage_id == storage.id]
    for row in mine:
        storage.delete(row.storage_path)
    if mine:
        with services.db.write() as session:
            session.execute(delete(_location).where(_location.c.pk.in_([r.pk for r in mine])))
    return len(mine)


def _remove_empty(services: ServiceContext, scope: _Scope) -> tuple[int, int]:
    """Delete the scope's series left without instances, then its study if it has no
    series left; returns (studies, series) deleted."""
    with services.db.write() as session:
        conn = session.connection()
        _lock(conn, scope)
        has_instances = exists(select(1).where(_instance.c.series_fk == _series.c.pk))
        mine = (
            _series.c.study_fk == scope.study_pk
            if scope.level == "STUDY"
            else _series.c.pk.in_(scope.series_pks)
        )
        series = conn.execute(delete(_series).where(mine, ~has_instances)).rowcount
        has_series = exists(select(1).where(_series.c.study_fk == _study.c.pk))
        studies = conn.execute(
            delete(_study).where(_study.c.pk == scope.study_pk, ~has_series)
        ).rowcount
    return studies, series


def delete_permanently(
    services: ServiceContext,
    level: str,
    uid: str,
    *,
    batch: int = BATCH,
    progress: Callable[[int], None] | None = None,
) -> Deleted:
    """Delete a study, series or instance (level STUDY, SERIES or IMAGE) with its files;
    `progress(instances deleted so far)` after each batch. Raises NothingToDelete when it
    is not in the archive."""
    with services.db.read() as session:
        scope = _scope(session.connection(), level, uid)
    instances = files = 0
    while True:
        done, doomed = _delete_batch(services, scope, batch)
        if not done:
            break
        instances += done
        files += _remove_files(services, doomed)
        if progress is not None:
            progress(instances)
    studies, series = _remove_empty(services, scope)
    return Deleted(studies, series, instances, files)
