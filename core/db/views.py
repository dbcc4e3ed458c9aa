"""Query/retrieve views (dcm4chee §1.9): which instances an archive AE shows.

A view is a predicate on `Instance.rejection_code`; a patient, study or series is visible
in a view when it has at least one visible instance. Rejecting instances (IOCM) only has
to set `rejection_code` ("113001^DCM", ...) for every view to follow.

The EXISTS conditions name the outer table they belong to (explicit correlation), so they
stay right inside subqueries whose FROM repeats a table of the enclosing query: SQL then
resolves the name to the nearest scope.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, exists, or_, select, true

from core.config import View
from core.db.models import Instance, Patient, Series, Study

# Rejection codes as kept in Instance.rejection_code: CodeValue^CodingSchemeDesignator.
QUALITY = "113001^DCM"
PATIENT_SAFETY = "113037^DCM"
WRONG_MWL = "113038^DCM"
RETENTION_EXPIRED = "113039^DCM"

# The IOCM views show only the instances rejected with their code.
_ONLY_REJECTED_WITH = {
    View.IOCM_QUALITY: QUALITY,
    View.IOCM_PAT_SAFETY: PATIENT_SAFETY,
    View.IOCM_WRONG_MWL: WRONG_MWL,
    View.IOCM_EXPIRED: RETENTION_EXPIRED,
}

_instance = Instance.__table__
_series = Series.__table__
_study = Study.__table__
_patient = Patient.__table__


def instance_visible(view: View) -> ColumnElement[bool]:
    """The condition on the `instance` table for instances shown in `view`."""
    if view == View.AS_RECEIVED:
        return true()
    if view == View.REGULAR:
        return _instance.c.rejection_code.is_(None)
    return _instance.c.rejection_code == _ONLY_REJECTED_WITH[View(view)]


def _with_rejected(column: ColumnElement[int], code: str | None) -> ColumnElement[bool]:
    """`column` (a series or study key) is one of those with an instance rejected with
    `code` (any code: None). Read from the small partial index of rejected instances."""
    rejected = (
        _instance.c.rejection_code.is_not(None)
        if code is None
        else _instance.c.rejection_code == code
    )
    if column is _series.c.pk:
        return column.in_(select(_instance.c.series_fk).where(rejected).correlate(None))
    return column.in_(
        select(_series.c.study_fk)
        .select_from(_instance.join(_series, _instance.c.series_fk == _series.c.pk))
        .where(rejected)
        .correlate(None)
    )


def _has_visible(column: ColumnElement[int], view: View, instances: Any) -> ColumnElement[bool]:
    """A series or study is never empty (ingest creates it with its first instance, and
    deleting its last instance deletes it): in the regular view it is visible unless it
    has a rejected instance, and then only if it has another one; in the as-received view
    always; in an IOCM view when it has an instance rejected with the view's code. So a
    list walks its index without looking at instances for every row."""
    if view == View.AS_RECEIVED:
        return true()
    if view != View.REGULAR:
        return _with_rejected(column, _ONLY_REJECTED_WITH[View(view)])
    return or_(~_with_rejected(column, None), instances)


def series_visible(view: View) -> ColumnElement[bool]:
    """The `series` row of the enclosing query has a visible instance."""
    return _has_visible(
        _series.c.pk,
        view,
        exists(
            select(1)
            .select_from(_instance)
            .where(_instance.c.series_fk == _series.c.pk, instance_visible(view))
            .correlate(_series)
        ),
    )


def study_visible(view: View) -> ColumnElement[bool]:
    """The `study` row of the enclosing query has a visible instance."""
    return _has_visible(
        _study.c.pk,
        view,
        exists(
            select(1)
            .select_from(_series.join(_instance, _instance.c.series_fk == _series.c.pk))
            .where(_series.c.study_fk == _study.c.pk, instance_visible(view))
            .correlate(_study)
        ),
    )


def patient_visible(view: View) -> ColumnElement[bool]:
    """EXISTS a visible instance of the `patient` row of the enclosing query."""
    return exists(
        select(1)
        .select_from(
            _study.join(_series, _series.c.study_fk == _study.c.pk).join(
                _instance, _instance.c.series_fk == _series.c.pk
            )
        )
        .where(_study.c.patient_fk == _patient.c.pk, instance_visible(view))
        .correlate(_patient)
    )


_BY_LEVEL = {
    "PATIENT": patient_visible,
    "STUDY": study_visible,
    "SERIES": series_visible,
    "IMAGE": instance_visible,
}


def visible(level: str, view: View) -> ColumnElement[bool]:
    """The visibility condition for rows of a query level (PATIENT, STUDY, SERIES, IMAGE)."""
    return _BY_LEVEL[level](view)
