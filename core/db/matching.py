"""DICOM matching keys (PS3.4 C.2.2.2) as SQLAlchemy Core conditions on the index.

The one place that does this: C-FIND and the console's search forms both call
`conditions()`. Matching follows dcm4chee-arc-light's QueryBuilder:

- universal matching: an empty value or `*` adds no condition;
- single value and wildcards `*` `?` (case-sensitive), with a literal prefix turned into
  `col >= 'DOE' AND col < 'DOF'` so a plain btree index serves it (this takes code point
  order: SQLite's BINARY collation, PostgreSQL's C or C.UTF-8);
- a backslash-separated value lists alternatives (list of UIDs, several modalities...);
  UIDs never hold wildcards (a `*` in one is a literal character), `*` alone excepted;
- DA and TM ranges `a-b`, `-b`, `a-`; a partial time is the whole period it names;
- person names match the upper-cased `*_upper` column, and trailing components left out
  of the query are free: `DOE` matches `DOE^JOHN` (dcm4chee matches per component);
- StudyDescription, SeriesDescription, StationName, InstitutionName ignore case when the
  query value is in upper case; Modality, BodyPartExamined, PatientSex are upper-cased;
- ModalitiesInStudy and SOPClassesInStudy match a series / instance of the study that
  is visible in the view;
- worklist items (`worklist_conditions`) match the patient keys, the requested
  procedure's keys and the keys inside ScheduledProcedureStepSequence (sequence matching)
  as dcm4chee's mwlItemLevelPredicates: the SPS start date and time as one combined
  range, the station AE title as an exact member of the item's titles, the SPS status
  as one of dcm4chee's statuses (others ignored), and items with a status to hide left out
  unless the query asks for a status.

Only the ideographic and phonetic groups of person names are not matched (the index keeps
the alphabetic group).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydicom import Dataset
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import RawDataElement
from pydicom.multival import MultiValue
from sqlalchemy import Boolean, ColumnElement, String, and_, exists, func, literal, or_, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.visitors import InternalTraversal

from core.config import SPSStatus, View
from core.db import views
from core.db.models import MPPS, UPS, Instance, MWLItem, MWLStationAET, Patient, Series, Study
from core.dicom.status import IDENTIFIER_DOES_NOT_MATCH, invalid

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

_patient = Patient.__table__
_study = Study.__table__
_series = Series.__table__
_instance = Instance.__table__
_mwl = MWLItem.__table__
_station = MWLStationAET.__table__


class MatchingError(ValueError):
    """A matching key whose value cannot be matched (e.g. a date that is no date); the
    comment is dcm4chee's style, "Invalid StudyDate (0008,0020) - 2026-13-45"."""

    def __init__(self, tag: int, value: str) -> None:
        keyword = keyword_for_tag(tag) or "Attribute"
        self.tag = tag
        self.status = IDENTIFIER_DOES_NOT_MATCH
        self.comment = invalid(keyword, tag, value)
        super().__init__(self.comment)


class Wildcard(ColumnElement[bool]):
    """`expr` matches a DICOM wildcard pattern (`*`, `?`), case-sensitively: LIKE with
    escaped `%` `_` `\\` in general, GLOB on SQLite (whose LIKE ignores ASCII case)."""

    __visit_name__ = "dicom_wildcard"
    inherit_cache = True
    _traverse_internals: ClassVar[list[tuple[str, InternalTraversal]]] = [
        ("expr", InternalTraversal.dp_clauseelement),
        ("like", InternalTraversal.dp_clauseelement),
        ("glob", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()

    def __init__(self, expr: ColumnElement[Any], pattern: str) -> None:
        self.expr = expr
        # Both forms are bound parameters, so the statement cache keeps working.
        self.like = literal(_like_pattern(pattern), String())
        self.glob = literal(_glob_pattern(pattern), String())


@compiles(Wildcard)
def _compile_like(element: Wildcard, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.expr.like(element.like, escape="\\"), **kw)


@compiles(Wildcard, "sqlite")
def _compile_glob(element: Wildcard, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.expr.op("GLOB", is_comparison=True)(element.glob), **kw)


class _Group(ColumnElement[bool]):
    """A condition in parentheses that or_() and and_() keep as one term (they flatten
    nested ORs, even grouped ones, back into one run)."""

    __visit_name__ = "dicom_group"
    inherit_cache = True
    _traverse_internals: ClassVar[list[tuple[str, InternalTraversal]]] = [
        ("inner", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()

    def __init__(self, inner: ColumnElement[bool]) -> None:
        self.inner = inner


@compiles(_Group)
def _compile_group(element: _Group, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.inner, **kw)})"


def _like_pattern(pattern: str) -> str:
    out = []
    for char in pattern:
        if char in "\\%_":
            out.append("\\" + char)
        else:
            out.append({"*": "%", "?": "_"}.get(char, char))
    return "".join(out)


def _glob_pattern(pattern: str) -> str:
    # `*` and `?` mean the same in GLOB; only `[` would start a character class.
    return pattern.replace("[", "[[]")


def _successor(prefix: str) -> str | None:
    """The smallest string above every string starting with `prefix` (code point order,
    as SQLite's BINARY and PostgreSQL's C / C.UTF-8 collations compare)."""
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        return None
    return prefix[:-1] + chr(last + 1)


def wildcard(col: ColumnElement[Any], pattern: str) -> ColumnElement[bool] | None:
    """Single value or wildcard matching of one value; None for universal matching."""
    if "*" not in pattern and "?" not in pattern:
        return col == pattern
    prefix = re.split(r"[*?]", pattern, maxsplit=1)[0]
    if not prefix and not pattern.strip("*"):
        return None
    parts: list[ColumnElement[bool]] = []
    if prefix:
        parts.append(col >= prefix)
        upper = _successor(prefix)
        if upper is not None:
            parts.append(col < upper)
    # `PREFIX*` is exactly the range; anything else also needs the pattern itself.
    if pattern.rstrip("*") != prefix or not prefix:
        parts.append(Wildcard(col, pattern))
    return and_(*parts)


# -- one value of each kind ------------------------------------------------------------

Matcher = Callable[[ColumnElement[Any], str], "ColumnElement[bool] | None"]


def _text(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    return wildcard(col, value)


def _uid(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    # No wildcards in UIDs: dcm4chee matches them literally.
    return col == value


def _code(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    return wildcard(col, value.upper())


def _text_ignore_case(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    # dcm4chee: an upper-case query value matches regardless of the stored case.
    if value == value.upper() and value != value.lower():
        return wildcard(func.upper(col), value)
    return wildcard(col, value)


def person_name(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    """Person name matching of one value; `col` is an upper-cased `*_upper` column (the
    alphabetic group of the stored name)."""
    name = value.split("=")[0].strip().upper().rstrip("^")
    if not name.strip("*^"):
        return None
    # An empty component matches any (dcm4chee): "^JOHN" is "*^JOHN". The `*` may also
    # span a `^`, so a leading empty component can over-match; the index cannot split.
    name = "^".join(c or "*" for c in name.split("^"))
    exact = wildcard(col, name)
    if name.endswith("*"):
        return exact
    # Components the query leaves out match anything: "DOE" also matches "DOE^JOHN".
    return or_(exact, wildcard(col, name + "^*"))


_DATE = re.compile(r"\d{8}")
_TIME = re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?")


def _date(text: str) -> str:
    # ACR-NEMA dates (YYYY.MM.DD) still come from old modalities.
    date = text.strip().replace(".", "") if len(text.strip()) == 10 else text.strip()
    if not _DATE.fullmatch(date):
        raise ValueError(text)
    # 20250230 has the form of a date but names no day: refused as `abc` is.
    datetime.strptime(date, "%Y%m%d")
    return date


def _time(text: str, *, end: bool) -> str:
    time = text.strip().replace(":", "")
    if not _TIME.fullmatch(time) or time[:2] > "23" or time[2:4] > "59" or time[4:6] > "60":
        raise ValueError(text)
    if not end:
        return time
    # The end of a range includes the whole period its precision names: 10 is 10:59:59.999999.
    whole, _, fraction = time.partition(".")
    return whole + "5959"[len(whole) - 2 :] + "." + fraction.ljust(6, "9")


def _range(
    col: ColumnElement[Any],
    value: str,
    parse: Callable[[str, bool], str],
    *,
    over_midnight: bool = False,
) -> ColumnElement[bool] | None:
    start, dash, stop = value.partition("-")
    if not dash:
        start = stop = value
    if not start.strip() and not stop.strip():
        return None
    low = parse(start, False) if start.strip() else None
    high = parse(stop, True) if stop.strip() else None
    if low is not None and high is not None:
        if low == high:
            return col == low
        if low > high and over_midnight:
            # A time range across midnight (as dcm4chee): 2200-0600.
            return or_(col >= low, col <= high)
        return col.between(low, high)
    return col >= low if low is not None else col <= high


def _date_range(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    return _range(col, value, lambda text, _end: _date(text))


def _time_range(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    return _range(col, value, lambda text, end: _time(text, end=end), over_midnight=True)


def _number(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    number = int(value.strip())
    # The columns are 32-bit integers.
    if not -(2**31) <= number < 2**31:
        raise ValueError(value)
    return col == number


def _issuer(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    # dcm4chee: a patient recorded without issuer matches any issuer.
    return or_(col.is_(None), col == value)


# -- the keys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """A matching key: the level whose rows it filters, its column and how it matches."""

    level: str
    column: ColumnElement[Any]
    match: Matcher


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    assert tag is not None, keyword
    return int(tag)


KEYS: dict[int, Key] = {
    _tag(keyword): Key(level, column, match)
    for keyword, level, column, match in (
        ("PatientID", "PATIENT", _patient.c.patient_id, _text),
        ("IssuerOfPatientID", "PATIENT", _patient.c.issuer, _issuer),
        ("PatientName", "PATIENT", _patient.c.patient_name_upper, person_name),
        ("PatientBirthDate", "PATIENT", _patient.c.birth_date, _date_range),
        ("PatientSex", "PATIENT", _patient.c.sex, _code),
        ("StudyInstanceUID", "STUDY", _study.c.study_iuid, _uid),
        ("StudyDate", "STUDY", _study.c.study_date, _date_range),
        ("StudyTime", "STUDY", _study.c.study_time, _time_range),
        ("AccessionNumber", "STUDY", _study.c.accession_number, _text),
        ("StudyID", "STUDY", _study.c.study_id, _text),
        ("StudyDescription", "STUDY", _study.c.study_description, _text_ignore_case),
        ("ReferringPhysicianName", "STUDY", _study.c.referring_physician_upper, person_name),
        ("ModalitiesInStudy", "STUDY", _series.c.modality, _code),
        ("SOPClassesInStudy", "STUDY", _instance.c.sop_cuid, _uid),
        ("SeriesInstanceUID", "SERIES", _series.c.series_iuid, _uid),
        ("Modality", "SERIES", _series.c.modality, _code),
        ("SeriesNumber", "SERIES", _series.c.series_number, _number),
        ("SeriesDescription", "SERIES", _series.c.series_description, _text_ignore_case),
        ("BodyPartExamined", "SERIES", _series.c.body_part, _code),
        ("InstitutionName", "SERIES", _series.c.institution, _text_ignore_case),
        ("StationName", "SERIES", _series.c.station_name, _text_ignore_case),
        ("SOPInstanceUID", "IMAGE", _instance.c.sop_iuid, _uid),
        ("SOPClassUID", "IMAGE", _instance.c.sop_cuid, _uid),
        ("InstanceNumber", "IMAGE", _instance.c.instance_number, _number),
        ("ContentDate", "IMAGE", _instance.c.content_date, _date_range),
        ("ContentTime", "IMAGE", _instance.c.content_time, _time_range),
    )
}
MODALITIES_IN_STUDY = _tag("ModalitiesInStudy")
SOP_CLASSES_IN_STUDY = _tag("SOPClassesInStudy")


def _in_study(tag: int, condition: ColumnElement[bool], view: View) -> ColumnElement[bool]:
    """EXISTS a visible series (ModalitiesInStudy) or instance (SOPClassesInStudy) of the
    enclosing query's study that meets `condition`."""
    if tag == MODALITIES_IN_STUDY:
        inner = (
            select(1)
            .select_from(_series)
            .where(_series.c.study_fk == _study.c.pk, condition, views.series_visible(view))
        )
    else:
        inner = (
            select(1)
            .select_from(_series.join(_instance, _instance.c.series_fk == _series.c.pk))
            .where(_series.c.study_fk == _study.c.pk, condition, views.instance_visible(view))
        )
    return exists(inner.correlate(_study))


# Alternatives ORed in one run: SQLite parses `a OR b OR c...` into a tree as deep as
# the run is long, and refuses depths over 1000.
_OR_RUN = 64


def _any_of(
    column: ColumnElement[Any], alternatives: list[ColumnElement[bool]]
) -> ColumnElement[bool]:
    """Any of `alternatives` (a list of values of one key): the single values compared
    with `column` as one IN, the others ORed in nested groups, so that a list of a
    thousand values stays a shallow expression."""

    def single(a: ColumnElement[bool]) -> bool:
        return isinstance(a, BinaryExpression) and a.operator is operators.eq and a.left is column

    equal = [a for a in alternatives if single(a)]
    if len(equal) > 1:
        values = [a.right.effective_value for a in equal]  # type: ignore[attr-defined]
        alternatives = [*(a for a in alternatives if not single(a)), column.in_(values)]

    def grouped(items: list[ColumnElement[bool]]) -> ColumnElement[bool]:
        if len(items) <= _OR_RUN:
            return or_(*items) if len(items) > 1 else items[0]
        middle = len(items) // 2
        return or_(_Group(grouped(items[:middle])), _Group(grouped(items[middle:])))

    return grouped(alternatives)


def _values(
    column: ColumnElement[Any], match: Matcher, tag: int, value: str
) -> ColumnElement[bool] | None:
    """The condition of a value of one key, a backslash-separated list of alternatives;
    None for universal matching."""
    values = [v.strip(" \0") for v in value.split("\\")]
    if any(v in ("", "*") for v in values):
        return None
    if match is _uid and len(values) > 1:
        # List of UID matching.
        return column.in_(values)
    try:
        alternatives = [match(column, v) for v in values]
    except ValueError:
        raise MatchingError(tag, value) from None
    if any(a is None for a in alternatives):
        return None
    return _any_of(column, alternatives)  # type: ignore[arg-type]


def key_condition(tag: int, value: str, view: View = View.REGULAR) -> ColumnElement[bool] | None:
    """The condition of one matching key (None: universal matching or not a matching key).
    Raises MatchingError for a value that cannot be matched."""
    key = KEYS.get(tag)
    if key is None:
        return None
    condition = _values(key.column, key.match, tag, value)
    if condition is None:
        return None
    if tag in (MODALITIES_IN_STUDY, SOP_CLASSES_IN_STUDY):
        assert condition is not None
        return _in_study(tag, condition, view)
    return condition


def conditions(
    level: str, keys: Mapping[int, str], view: View = View.REGULAR
) -> list[ColumnElement[bool]]:
    """The conditions of the matching keys that filter rows of `level`: keys of that level
    and of the levels above it (their tables must be joined in the query). Keys of lower
    levels and keys without a column are return keys only."""
    depth = LEVELS.index(level)
    out = []
    for tag, value in keys.items():
        key = KEYS.get(tag)
        if key is None or LEVELS.index(key.level) > depth:
            continue
        condition = key_condition(tag, value, view)
        if condition is not None:
            out.append(condition)
    return out


# -- reading matching values from an identifier -------------------------------------------

# Values of these VRs are ASCII whatever the character set: read from the raw bytes, since
# a pattern such as `*` in an IS key is no number pydicom could convert.
_ASCII_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "TM", "UI"})


def identifier_keys(identifier: Dataset) -> dict[int, str]:
    """The matching values (as DICOM strings, multiple values joined by `\\`) of the keys of
    `identifier` that have a column. Raises MatchingError for a value that cannot be
    decoded in the identifier's character set."""
    return {tag: _value_of(identifier, tag) for tag in KEYS if tag in identifier}


def _value_of(ds: Dataset, tag: int) -> str:
    """The matching value of `tag` in `ds` (which holds it) as a DICOM string."""
    elem = ds.get_item(tag)
    raw = elem.value if elem is not None else None
    vr = (elem.VR if elem is not None else None) or dictionary_VR(tag)
    if isinstance(elem, RawDataElement) and vr in _ASCII_VRS:
        return (raw or b"").decode("ascii", "replace").strip(" \0")
    try:
        value = ds[tag].value
    except Exception:
        raise MatchingError(tag, "cannot be decoded") from None
    if value is None:
        return ""
    if isinstance(value, MultiValue | list):
        return "\\".join(str(v) for v in value)
    return str(value)


# -- worklist items (Modality Worklist C-FIND and the console's MWL list) ------------------

SCHEDULED_PROCEDURE_STEP_SEQUENCE = _tag("ScheduledProcedureStepSequence")
SPS_START_DATE = _tag("ScheduledProcedureStepStartDate")
SPS_START_TIME = _tag("ScheduledProcedureStepStartTime")
SPS_STATUS = _tag("ScheduledProcedureStepStatus")


def _station_aet(_col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    # dcm4chee: the title is a member of the item's station AE titles, matched exactly.
    return exists(
        select(1)
        .select_from(_station)
        .where(_station.c.mwl_item_fk == _mwl.c.pk, _station.c.station_aet == value)
        .correlate(_mwl)
    )


_SPS_STATUSES = frozenset(s.value for s in SPSStatus)


def _sps_status(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    # dcm4chee: SPSStatus.valueOf of the upper-cased value; a value that names no status
    # adds no condition (but still counts as asking for a status: nothing is hidden).
    status = value.upper()
    if status not in _SPS_STATUSES:
        return None
    return col == status


# Keys of the item (and of its patient); those of the SPS are read from the first item of
# ScheduledProcedureStepSequence. The SPS start date and time are matched together.
WORKLIST_KEYS: dict[int, Key] = {
    **{tag: key for tag, key in KEYS.items() if key.level == "PATIENT"},
    **{
        _tag(keyword): Key("MWL", column, match)
        for keyword, column, match in (
            ("AccessionNumber", _mwl.c.accession_number, _text),
            ("RequestedProcedureID", _mwl.c.requested_procedure_id, _text),
            ("StudyInstanceUID", _mwl.c.study_iuid, _uid),
        )
    },
}
SPS_KEYS: dict[int, Key] = {
    _tag(keyword): Key("SPS", column, match)
    for keyword, column, match in (
        ("ScheduledProcedureStepID", _mwl.c.sps_id, _text),
        ("Modality", _mwl.c.modality, _code),
        ("ScheduledPerformingPhysicianName", _mwl.c.performing_physician_upper, person_name),
        ("ScheduledProcedureStepStatus", _mwl.c.sps_status, _sps_status),
        ("ScheduledStationAETitle", _mwl.c.pk, _station_aet),
        ("ScheduledProcedureStepStartDate", _mwl.c.sps_start_date, _date_range),
        ("ScheduledProcedureStepStartTime", _mwl.c.sps_start_time, _time_range),
    )
}


def _bounds(
    value: str, parse: Callable[[str, bool], str], tag: int
) -> tuple[str | None, str | None]:
    """The low and high ends of a DA or TM range value (None where open)."""
    start, dash, stop = value.partition("-")
    if not dash:
        start = stop = value
    try:
        low = parse(start, False) if start.strip() else None
        high = parse(stop, True) if stop.strip() else None
    except ValueError:
        raise MatchingError(tag, value) from None
    return low, high


def _combined_start(date: str, time: str | None) -> ColumnElement[bool]:
    date_col, time_col = _mwl.c.sps_start_date, _mwl.c.sps_start_time
    if time is None:
        return date_col >= date
    # A step without a start time is in the range on any day of it (dcm4chee: time `*`).
    on_day = and_(date_col == date, or_(time_col >= time, time_col.is_(None)))
    return or_(date_col > date, _Group(on_day))


def _combined_end(date: str, time: str | None) -> ColumnElement[bool]:
    date_col, time_col = _mwl.c.sps_start_date, _mwl.c.sps_start_time
    if time is None:
        return date_col <= date
    on_day = and_(date_col == date, or_(time_col <= time, time_col.is_(None)))
    return or_(date_col < date, _Group(on_day))


def _sps_start(date: str, time: str) -> list[ColumnElement[bool]]:
    """dcm4chee's combined date and time range matching of the SPS start: from the start
    date at the start time to the end date at the end time."""
    low_date, high_date = _bounds(date, lambda t, _e: _date(t), SPS_START_DATE)
    low_time, high_time = _bounds(time, lambda t, e: _time(t, end=e), SPS_START_TIME)
    out: list[ColumnElement[bool]] = []
    if low_date is not None and low_date == high_date:
        out.append(_mwl.c.sps_start_date == low_date)
        if low_time is not None:
            out.append(or_(_mwl.c.sps_start_time >= low_time, _mwl.c.sps_start_time.is_(None)))
        if high_time is not None:
            out.append(or_(_mwl.c.sps_start_time <= high_time, _mwl.c.sps_start_time.is_(None)))
        return out
    if low_date is not None:
        out.append(_combined_start(low_date, low_time))
    if high_date is not None:
        out.append(_combined_end(high_date, high_time))
    return out


def _key_condition(key: Key, tag: int, value: str) -> ColumnElement[bool] | None:
    """The condition of a value of a key of another table than the study levels'."""
    return _values(key.column, key.match, tag, value)


def _universal(value: str | None) -> bool:
    return value is None or all(v.strip(" \0") in ("", "*") for v in value.split("\\"))


def worklist_conditions(
    keys: Mapping[int, str], hide_statuses: Sequence[str] = ()
) -> list[ColumnElement[bool]]:
    """The conditions on mwl_item (joined with its patient) of worklist matching keys:
    those of WORKLIST_KEYS and SPS_KEYS by tag (the SPS's flattened in: they share no tag
    with the item's). Items whose SPS status is in `hide_statuses` are left out unless the
    query has a value for ScheduledProcedureStepStatus (dcm4chee's hideSPSWithStatus).
    Raises MatchingError for a value that cannot be matched."""
    out: list[ColumnElement[bool]] = []
    date, time = keys.get(SPS_START_DATE), keys.get(SPS_START_TIME)
    combined = not _universal(date) and not _universal(time)
    for tag, value in keys.items():
        key = WORKLIST_KEYS.get(tag) or SPS_KEYS.get(tag)
        if key is None or (combined and tag in (SPS_START_DATE, SPS_START_TIME)):
            continue
        condition = _key_condition(key, tag, value)
        if condition is not None:
            out.append(condition)
    if combined:
        out += _sps_start(date or "", time or "")
    if not (keys.get(SPS_STATUS) or "").strip(" \0") and hide_statuses:
        out.append(_mwl.c.sps_status.not_in(list(hide_statuses)))
    return out


def worklist_identifier_keys(identifier: Dataset) -> dict[int, str]:
    """The worklist matching values of a Modality Worklist identifier: the item's keys and
    those in the first item of its ScheduledProcedureStepSequence (sequence matching).
    Raises MatchingError for a value that cannot be decoded."""
    out = {tag: _value_of(identifier, tag) for tag in WORKLIST_KEYS if tag in identifier}
    steps = identifier.get(SCHEDULED_PROCEDURE_STEP_SEQUENCE)
    if steps is not None and steps.VR == "SQ" and steps.value:
        step = steps.value[0]
        out.update({tag: _value_of(step, tag) for tag in SPS_KEYS if tag in step})
    return out


# -- UPS work items (issue 15, part "ups") -------------------------------------------------
#
# The keys of the UPS information model (PS3.4 CC.2.8, as dcm4chee's upsLevelPredicates):
# a key is a path, a top-level tag or a sequence and a tag of its (first) item, matched on
# a column of the `ups` table; patient keys match the linked patient (outer-joined).
# Templates (no start date/time) are for the caller to include or leave out.

_ups = UPS.__table__

_DT = re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?")


def _date_time(text: str, *, end: bool) -> str:
    # A time zone offset is not compared: stored values keep the sender's local time.
    value = re.sub(r"[+-]\d{4}$", "", text.strip())
    if not _DT.fullmatch(value):
        raise ValueError(text)
    whole, _, fraction = value.partition(".")
    # 20261301 has the form of a date time but names no month: refused as `abc` is.
    datetime.strptime(whole + "0101000000"[len(whole) - 4 :], "%Y%m%d%H%M%S")
    if not end:
        return value
    # The end of a range includes the whole period its precision names.
    return whole + "1231235959"[len(whole) - 4 :] + "." + fraction.ljust(6, "9")


def _date_time_range(col: ColumnElement[Any], value: str) -> ColumnElement[bool] | None:
    return _range(col, value, lambda text, end: _date_time(text, end=end))


def _tags_of(*keywords: str) -> tuple[int, ...]:
    return tuple(_tag(k) for k in keywords)


UPS_KEYS: dict[tuple[int, ...], tuple[ColumnElement[Any], Matcher]] = {
    _tags_of(*path.split(">")): (column, match)
    for path, column, match in (
        ("SOPInstanceUID", _ups.c.ups_iuid, _uid),
        ("ProcedureStepState", _ups.c.state, _code),
        ("ScheduledProcedureStepPriority", _ups.c.priority, _code),
        ("ProcedureStepLabel", _ups.c.label, _text_ignore_case),
        ("WorklistLabel", _ups.c.worklist_label, _text_ignore_case),
        ("ScheduledProcedureStepStartDateTime", _ups.c.start_date_time, _date_time_range),
        ("ExpectedCompletionDateTime", _ups.c.expected_end_date_time, _date_time_range),
        (
            "ScheduledProcedureStepExpirationDateTime",
            _ups.c.expiration_date_time,
            _date_time_range,
        ),
        ("InputReadinessState", _ups.c.input_readiness_state, _code),
        ("AdmissionID", _ups.c.admission_id, _text),
        ("StudyInstanceUID", _ups.c.study_iuid, _uid),
        ("ReferencedRequestSequence>StudyInstanceUID", _ups.c.study_iuid, _uid),
        ("ReferencedRequestSequence>AccessionNumber", _ups.c.accession_number, _text),
        ("ScheduledWorkitemCodeSequence>CodeValue", _ups.c.workitem_code, _text),
        ("ScheduledWorkitemCodeSequence>CodingSchemeDesignator", _ups.c.workitem_scheme, _text),
        ("ScheduledStationNameCodeSequence>CodeValue", _ups.c.station_name, _text),
    )
}


def ups_conditions(keys: Mapping[tuple[int, ...], str]) -> list[ColumnElement[bool]]:
    """The conditions of UPS matching keys (paths as in UPS_KEYS; a one-tag path of a
    patient key matches the linked patient). Raises MatchingError for a value that
    cannot be matched."""
    out = []
    for path, value in keys.items():
        key = UPS_KEYS.get(path)
        if key is None:
            patient_key = KEYS.get(path[0]) if len(path) == 1 else None
            if patient_key is not None and patient_key.level == "PATIENT":
                condition = key_condition(path[0], value)
                if condition is not None:
                    out.append(condition)
            continue
        condition = _values(*key, path[-1], value)
        if condition is not None:
            out.append(condition)
    return out


def ups_identifier_keys(identifier: Dataset) -> dict[tuple[int, ...], str]:
    """The matching values of the UPS and patient keys in `identifier` (sequence keys
    from the first item of their sequence). Raises MatchingError for a value that cannot
    be decoded."""
    out: dict[tuple[int, ...], str] = {}
    for path in UPS_KEYS:
        ds: Dataset | None = identifier
        for tag in path[:-1]:
            items = ds.get(tag) if ds is not None else None
            ds = items[0] if items else None
        if ds is not None and path[-1] in ds:
            out[path] = _value_of(ds, path[-1])
    for tag, key in KEYS.items():
        if key.level == "PATIENT" and tag in identifier:
            out[(tag,)] = _value_of(identifier, tag)
    return out


# -- performed procedure steps (the console's MPPS list) -----------------------------------

_mpps = MPPS.__table__

MPPS_KEYS: dict[int, Key] = {
    _tag(keyword): Key("MPPS", column, match)
    for keyword, column, match in (
        ("PerformedProcedureStepID", _mpps.c.pps_id, _text),
        ("PatientID", _mpps.c.patient_id, _text),
        ("AccessionNumber", _mpps.c.accession_number, _text),
        ("StudyInstanceUID", _mpps.c.study_iuid, _uid),
        ("PerformedStationAETitle", _mpps.c.station_aet, _text),
        ("Modality", _mpps.c.modality, _code),
        ("PerformedProcedureStepStatus", _mpps.c.status, _code),
        ("PerformedProcedureStepStartDate", _mpps.c.start_date, _date_range),
    )
}


def mpps_conditions(keys: Mapping[int, str]) -> list[ColumnElement[bool]]:
    """The conditions on the mpps table of matching keys of MPPS_KEYS (by tag). Raises
    MatchingError for a value that cannot be matched."""
    out: list[ColumnElement[bool]] = []
    for tag, value in keys.items():
        key = MPPS_KEYS.get(tag)
        condition = _key_condition(key, tag, value) if key is not None else None
        if condition is not None:
            out.append(condition)
    return out
