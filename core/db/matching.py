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
  is visible in the view.

Only the ideographic and phonetic groups of person names are not matched (the index keeps
the alphabetic group).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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

from core.config import View
from core.db import views
from core.db.models import Instance, Patient, Series, Study
from core.dicom.status import IDENTIFIER_DOES_NOT_MATCH, invalid

LEVELS = ("PATIENT", "STUDY", "SERIES", "IMAGE")

_patient = Patient.__table__
_study = Study.__table__
_series = Series.__table__
_instance = Instance.__table__


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


def key_condition(tag: int, value: str, view: View = View.REGULAR) -> ColumnElement[bool] | None:
    """The condition of one matching key (None: universal matching or not a matching key).
    Raises MatchingError for a value that cannot be matched."""
    key = KEYS.get(tag)
    if key is None:
        return None
    values = [v.strip(" \0") for v in value.split("\\")]
    if any(v in ("", "*") for v in values):
        return None
    if key.match is _uid and len(values) > 1:
        # List of UID matching.
        condition: ColumnElement[bool] | None = key.column.in_(values)
    else:
        try:
            alternatives = [key.match(key.column, v) for v in values]
        except ValueError:
            raise MatchingError(tag, value) from None
        if any(a is None for a in alternatives):
            return None
        condition = _any_of(key.column, alternatives)  # type: ignore[arg-type]
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
    out: dict[int, str] = {}
    for tag in KEYS:
        if tag not in identifier:
            continue
        elem = identifier.get_item(tag)
        raw = elem.value if elem is not None else None
        vr = (elem.VR if elem is not None else None) or dictionary_VR(tag)
        if isinstance(elem, RawDataElement) and vr in _ASCII_VRS:
            out[tag] = (raw or b"").decode("ascii", "replace").strip(" \0")
            continue
        try:
            value = identifier[tag].value
        except Exception:
            raise MatchingError(tag, "cannot be decoded") from None
        if value is None:
            out[tag] = ""
        elif isinstance(value, MultiValue | list):
            out[tag] = "\\".join(str(v) for v in value)
        else:
            out[tag] = str(value)
    return out
