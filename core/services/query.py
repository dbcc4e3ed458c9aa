"""The query use case: Patient/Study Root C-FIND at every level, and the console's searches.

A Query names a level, its matching keys and its return keys. `find()` streams the
response data sets (the database answers in chunks: no result is ever held whole),
`count()` and `page()` serve paged result tables. Matching is core.db.matching; what an AE
sees is core.db.views. Responses carry only the requested keys (empty when there is no
value, as dcm4che does), with values from the `attrs` JSON of each level and the computed
keys (numbers of related objects, modalities and SOP classes in study) counted in SQL
over the instances visible in the view.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any

from pydicom import Dataset
from pydicom.charset import convert_encodings, default_encoding
from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.tag import BaseTag
from sqlalchemy import ColumnElement, FromClause, Integer, Select, func, literal_column, select

from core.config import View
from core.db import computed, matching, views
from core.db.models import Instance, Patient, Series, Study
from core.dicom import attributes
from core.services import paging
from core.services.context import ServiceContext
from core.services.identifier import QUERY_RETRIEVE_LEVEL, validate

LEVELS = matching.LEVELS
SPECIFIC_CHARACTER_SET = attributes.SPECIFIC_CHARACTER_SET
RETRIEVE_AE_TITLE = 0x00080054
INSTANCE_AVAILABILITY = 0x00080056
# Values from several levels (and so maybe several character sets) share one response:
# UTF-8 can carry them all.
UTF8 = "ISO_IR 192"

_patient = Patient.__table__
_study = Study.__table__
_series = Series.__table__
_instance = Instance.__table__

# Each level's rows joined with the rows of the levels above.
_FROM: dict[str, FromClause] = {
    "PATIENT": _patient,
    "STUDY": _study.join(_patient, _study.c.patient_fk == _patient.c.pk),
    "SERIES": _series.join(_study, _series.c.study_fk == _study.c.pk).join(
        _patient, _study.c.patient_fk == _patient.c.pk
    ),
    "IMAGE": _instance.join(_series, _instance.c.series_fk == _series.c.pk)
    .join(_study, _series.c.study_fk == _study.c.pk)
    .join(_patient, _study.c.patient_fk == _patient.c.pk),
}
_TABLE = {"PATIENT": _patient, "STUDY": _study, "SERIES": _series, "IMAGE": _instance}
# The column of each level's table that names its row of the level above.
_PARENT = {"STUDY": "patient_fk", "SERIES": "study_fk", "IMAGE": "series_fk"}

# Which level's `attrs` keeps an attribute (dcm4chee's attribute filters).
_ATTRS_LEVEL: dict[int, str] = {
    tag: level
    for level, tags in (
        ("PATIENT", attributes.PATIENT),
        ("STUDY", attributes.STUDY),
        ("SERIES", attributes.SERIES),
        ("IMAGE", attributes.INSTANCE),
    )
    for tag in tags
    if tag != SPECIFIC_CHARACTER_SET
}


# -- the query ---------------------------------------------------------------------------


@cache
def _vr(tag: int) -> str:
    try:
        return dictionary_VR(tag).split(" or ")[0]
    except KeyError:
        return "UN"


@dataclass(frozen=True)
class Query:
    """What to look for: the level (PATIENT, STUDY, SERIES or IMAGE), matching values by
    tag (DICOM strings: wildcards, ranges, UID lists), the return keys as (tag, VR), the
    AE's view, and the AE title to answer as RetrieveAETitle."""

    level: str
    keys: Mapping[int, str] = field(default_factory=dict)
    returns: tuple[tuple[int, str], ...] = ()
    view: View = View.REGULAR
    retrieve_aet: str | None = None
    # Only the rows of this patient (the console's patient -> studies): a Patient ID alone
    # may name several patients (other issuers), and may hold wildcard characters.
    patient_pk: int | None = None

    @classmethod
    def from_identifier(
        cls,
        identifier: Dataset,
        model: str,
        *,
        relational: bool,
        view: View,
        retrieve_aet: str | None,
    ) -> Query:
        """The query of a C-FIND identifier in the Patient Root ("PATIENT") or Study Root
        ("STUDY") model. Raises IdentifierError (A900, as dcm4che validates it) or
        MatchingError for a key value that cannot be matched."""
        level = validate(identifier, model, retrieve=False, relational=relational)
        returns = []
        # keys(), not the Dataset itself: iterating converts every value (a `*` in an IS
        # key would not convert).
        for tag in sorted(identifier.keys()):
            if tag in (QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET) or tag.element == 0:
                continue
            elem = identifier.get_item(tag)
            returns.append((int(tag), (elem.VR if elem is not None else None) or _vr(tag)))
        return cls(level, matching.identifier_keys(identifier), tuple(returns), view, retrieve_aet)

    @classmethod
    def of(
        cls,
        level: str,
        match: Mapping[str, str] | None = None,
        returns: Iterable[str] = (),
        *,
        view: View = View.REGULAR,
        patient_pk: int | None = None,
    ) -> Query:
        """A query by keywords, as the console's search forms build it:
        `Query.of("STUDY", {"PatientName": "DOE*"}, ["StudyDate", "StudyDescription"])`;
        `patient_pk` keeps only the rows of that patient."""
        if level not in LEVELS:
            raise ValueError(f"unknown query level {level!r}")
        keys = {_tag(k): v for k, v in (match or {}).items()}
        returns_ = tuple((_tag(k), _vr(_tag(k))) for k in returns)
        return cls(level, keys, returns_, view, patient_pk=patient_pk)


def _tag(keyword: str) -> int:
    tag = tag_for_keyword(keyword)
    if tag is None:
        raise ValueError(f"unknown attribute keyword {keyword!r}")
    return int(tag)


def _scope(query: Query) -> list[ColumnElement[bool]]:
    return [] if query.patient_pk is None else [_patient.c.pk == query.patient_pk]


def _where(query: Query) -> list[ColumnElement[bool]]:
    return [
        views.visible(query.level, query.view),
        *matching.conditions(query.level, query.keys, query.view),
        *_scope(query),
    ]


@lru_cache(maxsize=256)
def _select(level: str, view: View, stored: tuple[str, ...], tags: tuple[int, ...]) -> Select:
    """The part of a query's statement that does not depend on the matching values, built
    once: the `attrs` of the `stored` levels, the computed keys `tags`, the view."""
    columns: list[ColumnElement[Any]] = [_TABLE[name].c.attrs.label(name) for name in stored]
    columns += [computed.expression(tag, view) for tag in tags]
    # A query for no attribute still needs one column per match.
    columns.append(_TABLE[level].c.pk.label("pk"))
    return select(*columns).select_from(_FROM[level]).where(views.visible(level, view))


def _statement(query: Query) -> Select[Any]:
    """SELECT the `attrs` of the levels that hold requested keys, and the computed keys
    of this level and the levels above; WHERE the view and the matching keys."""
    above = LEVELS[: LEVELS.index(query.level) + 1]
    wanted = {_ATTRS_LEVEL.get(tag) for tag, _ in query.returns}
    return _select(
        query.level,
        query.view,
        tuple(level for level in above if level in wanted),
        tuple(
            tag
            for tag, _ in query.returns
            if tag in computed.BY_TAG and computed.BY_TAG[tag].level in above
        ),
    ).where(*matching.conditions(query.level, query.keys, query.view), *_scope(query))


# -- responses ---------------------------------------------------------------------------

# Values of these VRs are kept as raw bytes, encoded once: pydicom writes them as they are,
# several times faster than converting JSON to values and values to bytes.
_TEXT_VRS = frozenset(
    ["AE", "AS", "CS", "DA", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"]
)
_BINARY_VRS = {"US": "H", "SS": "h", "UL": "L", "SL": "l", "FL": "f", "FD": "d"}
_PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")


def _strings(vr: str, values: list[Any]) -> list[str]:
    if vr == "PN":
        return ["=".join(v.get(g, "") for g in _PN_GROUPS).rstrip("=") if v else "" for v in values]
    return ["" if v is None else str(v) for v in values]


def _raw(tag: int, vr: str, data: bytes) -> RawDataElement:
    if len(data) % 2:
        data += b"\0" if vr == "UI" else b" "
    return RawDataElement(BaseTag(tag), vr, len(data), data, 0, False, True)


def _ascii(value: Any) -> bool:
    if isinstance(value, str):
        return value.isascii()
    if isinstance(value, dict):
        return all(_ascii(v) for v in value.values())
    if isinstance(value, list):
        return all(_ascii(v) for v in value)
    return True


def _from_json(tag: int, entry: dict[str, Any]) -> DataElement:
    value_key = next((k for k in ("Value", "InlineBinary", "BulkDataURI") if k in entry), None)
    return DataElement.from_json(
        Dataset,
        attributes.key(tag),
        entry["vr"],
        entry.get(value_key) if value_key else None,
        value_key,
    )


def _response(query: Query, row: Any) -> Dataset:
    """One response: QueryRetrieveLevel and every requested key, empty without a value.
    Text is encoded in UTF-8 when any value is not ASCII."""
    mapping = row._mapping
    stored: dict[str, dict[str, Any]] = {}
    texts: list[tuple[int, str, list[str]]] = [(QUERY_RETRIEVE_LEVEL, "CS", [query.level])]
    others: list[DataElement | RawDataElement] = []
    non_ascii = False
    for tag, vr in query.returns:
        key = computed.BY_TAG.get(tag)
        level = _ATTRS_LEVEL.get(tag)
        entry: dict[str, Any] | None = None
        if key is not None and key.keyword in mapping:
            value = mapping[key.keyword]
            values = [] if value is None else sorted(str(value).split("\\"))
            texts.append((tag, _vr(tag), values))
            continue
        if tag == RETRIEVE_AE_TITLE:
            texts.append((tag, "AE", [query.retrieve_aet or ""]))
            continue
        if tag == INSTANCE_AVAILABILITY:
            texts.append((tag, "CS", ["ONLINE"]))
            continue
        if level is not None and level in mapping:
            if level not in stored:
                stored[level] = attributes.loads(mapping[level])
            entry = stored[level].get(attributes.key(tag))
        if (
            entry is None
            or (not entry.get("Value") and "InlineBinary" not in entry)
            # Kept as received in another VR (an IS of "1e999" as UT, core.dicom.
            # attributes): a response carries only values valid for their VR.
            or entry["vr"] != _vr(tag)
        ):
            if vr == "SQ":
                others.append(DataElement(tag, "SQ", []))
            else:
                texts.append((tag, vr, []))
        elif entry["vr"] in _TEXT_VRS and "Value" in entry:
            texts.append((tag, entry["vr"], _strings(entry["vr"], entry["Value"])))
        elif entry["vr"] in _BINARY_VRS and "Value" in entry and None not in entry["Value"]:
            code = _BINARY_VRS[entry["vr"]]
            data = struct.pack(f"<{len(entry['Value'])}{code}", *entry["Value"])
            others.append(_raw(tag, entry["vr"], data))
        else:
            # Sequences, DS, binary data: pydicom converts these.
            non_ascii = non_ascii or not _ascii(entry.get("Value"))
            others.append(_from_json(tag, entry))
    non_ascii = non_ascii or not all(v.isascii() for _, _, values in texts for v in values)
    ds = Dataset()
    encoding = "utf-8" if non_ascii else "ascii"
    if non_ascii:
        texts.append((SPECIFIC_CHARACTER_SET, "CS", [UTF8]))
    for tag, vr, values in texts:
        ds[tag] = _raw(tag, vr, "\\".join(values).encode(encoding))
    for elem in others:
        ds[elem.tag] = elem
    # The raw values are Explicit VR Little Endian in the data set's character set: lets
    # pydicom write them as they are.
    ds.set_original_encoding(
        False, True, convert_encodings(UTF8) if non_ascii else default_encoding
    )
    return ds


def find(services: ServiceContext, query: Query, *, chunk: int = 100) -> Iterator[Dataset]:
    """The responses of a query, fetched from the database `chunk` rows at a time. Raises
    MatchingError at once (before any response) when a key cannot be matched. Close the
    iterator when stopping early (C-CANCEL): that ends the read transaction."""
    statement = _statement(query).execution_options(yield_per=chunk)

    def stream() -> Iterator[Dataset]:
        with services.db.read() as session:
            for row in session.execute(statement):
                yield _response(query, row)

    return stream()


def count(services: ServiceContext, query: Query) -> int:
    """How many rows match (for the console's result counts and pagers)."""
    with services.db.read() as session:
        return paging.count(session, listing(query))


def _sort_column(key: matching.Key) -> ColumnElement[Any]:
    """The column of a matching key as a sort key takes it: never NULL (no value sorts as
    the empty text or -1, first ascending, last descending, on SQLite and PostgreSQL
    alike), person names family name first ("DOE^JOHN" ahead of "DOERING^MAX")."""
    column = key.column
    if key.match is matching.person_name:
        column = func.replace(column, "^", " ")
    # Literal, not a bound parameter: an index on the expression must see the same text.
    empty = literal_column("-1") if isinstance(key.column.type, Integer) else literal_column("''")
    return func.coalesce(column, empty)


def _needed(query: Query, order: Sequence[str]) -> str:
    """The highest level whose table the rows of `query` must be joined with: the levels of
    the matching keys and ordering keywords (the joins cost a lookup for every row)."""
    levels = [query.level, *(matching.KEYS[t].level for t in query.keys if t in matching.KEYS)]
    levels += [matching.KEYS[_tag(item.removeprefix("-"))].level for item in order]
    if query.patient_pk is not None:
        levels.append("PATIENT")
    return min(levels, key=LEVELS.index)


def sort_key(level: str, order: Sequence[str]) -> tuple[tuple[ColumnElement[Any], bool], ...]:
    """The sort key of a list of `level` rows ordered by matching-key keywords (`-` first
    for descending, e.g. `("-StudyDate", "PatientName")`), then by arrival (the primary
    key), as core.services.paging takes it."""
    sort: list[tuple[ColumnElement[Any], bool]] = []
    for item in order:
        keyword = item.removeprefix("-")
        tag = _tag(keyword)
        key = matching.KEYS.get(tag)
        # ModalitiesInStudy and SOPClassesInStudy match lower levels: nothing to sort by.
        if (
            key is None
            or tag in computed.BY_TAG
            or key.level not in LEVELS[: LEVELS.index(level) + 1]
        ):
            raise ValueError(f"cannot order {level} results by {keyword}")
        sort.append((_sort_column(key), item.startswith("-")))
    sort.append((_TABLE[level].c.pk, False))
    return tuple(sort)


def listing(query: Query, order: Sequence[str] = ()) -> paging.Listing:
    """The rows of `query` as a list for core.services.paging, in `order` (sort_key()).
    The rows are joined only with the tables above them that the matching and the order
    need (each join costs a lookup for every row walked)."""
    sort = sort_key(query.level, order)
    top = LEVELS.index(_needed(query, order))
    from_: FromClause = _TABLE[query.level]
    for level in reversed(LEVELS[top : LEVELS.index(query.level)]):
        below = LEVELS[LEVELS.index(level) + 1]
        parent = _TABLE[below].c[_PARENT[below]]
        from_ = from_.join(_TABLE[level], parent == _TABLE[level].c.pk)
    return paging.Listing(from_, tuple(_where(query)), sort)


def page(
    services: ServiceContext,
    query: Query,
    *,
    offset: int = 0,
    limit: int = 50,
    order: Sequence[str] = (),
    total: int | None = None,
) -> list[Dataset]:
    """One page of responses, ordered by matching-key keywords (`-` first for descending,
    e.g. `("-StudyDate", "PatientName")`); rows in equal order keep insertion order.
    `total` (the count() of the query, when the caller has it) spares counting again."""
    rows = listing(query, order)
    pk = _TABLE[query.level].c.pk
    with services.db.read() as session:
        if total is None:
            total = paging.count(session, rows)
        keys = paging.page_keys(session, rows, offset=offset, limit=limit, total=total)
        pks = [key[-1] for key in keys]
        found = {row.pk: row for row in session.execute(_statement(query).where(pk.in_(pks)))}
    return [_response(query, found[pk]) for pk in pks if pk in found]
