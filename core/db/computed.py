"""Computed return keys of C-FIND (PS3.4 C.3.4 "additional attributes"): numbers of
related studies, series and instances, modalities and SOP classes in a study.

Each is a correlated subquery on the row of its level in the enclosing query, counting
only what the AE's view shows, so the database answers them along with the matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydicom.datadict import tag_for_keyword
from sqlalchemy import ColumnElement, FromClause, func, select

from core.config import View
from core.db import views
from core.db.models import Instance, Patient, Series, Study

_patient = Patient.__table__
_study = Study.__table__
_series = Series.__table__
_instance = Instance.__table__


def _count(
    from_: FromClause, parent: ColumnElement[bool], outer: FromClause, *where: Any
) -> ColumnElement[Any]:
    # Explicit correlation: `from_` may repeat a table of the enclosing query.
    return (
        select(func.count()).select_from(from_).where(parent, *where).correlate(outer)
    ).scalar_subquery()


def _distinct(column: ColumnElement[Any], from_: FromClause, *where: Any) -> ColumnElement[Any]:
    """The distinct values of `column` for the enclosing study, joined by backslashes."""
    values = (
        select(column.label("v")).select_from(from_).where(*where).distinct().correlate(_study)
    ).subquery()
    return select(func.aggregate_strings(values.c.v, "\\")).correlate(_study).scalar_subquery()


def _series_of_study() -> FromClause:
    return _series.join(_study, _series.c.study_fk == _study.c.pk)


def _instances_of_series() -> FromClause:
    return _instance.join(_series, _instance.c.series_fk == _series.c.pk)


@dataclass(frozen=True)
class Computed:
    """A computed key: its keyword, the level whose row it describes (that level's table
    must be in the enclosing query) and its SQL for a view."""

    keyword: str
    level: str
    build: Callable[[View], ColumnElement[Any]]

    @property
    def tag(self) -> int:
        return int(tag_for_keyword(self.keyword))  # type: ignore[arg-type]


KEYS = (
    Computed(
        "NumberOfPatientRelatedStudies",
        "PATIENT",
        lambda v: _count(
            _study, _study.c.patient_fk == _patient.c.pk, _patient, views.study_visible(v)
        ),
    ),
    Computed(
        "NumberOfPatientRelatedSeries",
        "PATIENT",
        lambda v: _count(
            _series_of_study(),
            _study.c.patient_fk == _patient.c.pk,
            _patient,
            views.series_visible(v),
        ),
    ),
    Computed(
        "NumberOfPatientRelatedInstances",
        "PATIENT",
        lambda v: _count(
            _instances_of_series().join(_study, _series.c.study_fk == _study.c.pk),
            _study.c.patient_fk == _patient.c.pk,
            _patient,
            views.instance_visible(v),
        ),
    ),
    Computed(
        "NumberOfStudyRelatedSeries",
        "STUDY",
        lambda v: _count(
            _series, _series.c.study_fk == _study.c.pk, _study, views.series_visible(v)
        ),
    ),
    Computed(
        "NumberOfStudyRelatedInstances",
        "STUDY",
        lambda v: _count(
            _instances_of_series(),
            _series.c.study_fk == _study.c.pk,
            _study,
            views.instance_visible(v),
        ),
    ),
    Computed(
        "NumberOfSeriesRelatedInstances",
        "SERIES",
        lambda v: _count(
            _instance, _instance.c.series_fk == _series.c.pk, _series, views.instance_visible(v)
        ),
    ),
    Computed(
        "ModalitiesInStudy",
        "STUDY",
        lambda v: _distinct(
            _series.c.modality,
            _series,
            _series.c.study_fk == _study.c.pk,
            _series.c.modality.is_not(None),
            views.series_visible(v),
        ),
    ),
    Computed(
        "SOPClassesInStudy",
        "STUDY",
        lambda v: _distinct(
            _instance.c.sop_cuid,
            _instances_of_series(),
            _series.c.study_fk == _study.c.pk,
            views.instance_visible(v),
        ),
    ),
)
BY_TAG = {key.tag: key for key in KEYS}


@lru_cache(maxsize=64)
def expression(tag: int, view: View) -> ColumnElement[Any]:
    """The SQL of the computed key `tag` in `view`, labelled with its keyword (the value is
    a number, or several values joined by backslashes, or NULL)."""
    key = BY_TAG[tag]
    return key.build(view).label(key.keyword)
