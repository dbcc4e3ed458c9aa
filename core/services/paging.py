"""Paging of the console's result lists, one page at a time, in the database.

A list is ordered on a sort key: expressions that are never NULL, each ascending or
descending, ending with a unique key (the primary key) so that no two rows tie and every
row has one place. The page after (or before) the one shown is read by seeking past the
sort key of its last (or first) row (keyset paging: the database reads only the page);
the last page is read from the far end, reversed; any other page is read with OFFSET from
the nearer end. The number of matches is a COUNT.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, FromClause, Select, and_, func, or_, select
from sqlalchemy.orm import Session

T = TypeVar("T")
Key = tuple[Any, ...]


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a result list as the console shows it: `rows` from `offset` of
    `total` matches; `keys` are the rows' sort keys (where the pages around it start)."""

    rows: list[T]
    total: int
    offset: int
    keys: list[Key] = field(default_factory=list, compare=False, repr=False)


@dataclass(frozen=True)
class Listing:
    """A result list: the rows of `from_` that meet `where`, ordered on `sort`, a tuple of
    (expression, descending) that are never NULL and end with a unique key."""

    from_: FromClause
    where: tuple[ColumnElement[bool], ...]
    sort: tuple[tuple[ColumnElement[Any], bool], ...]


def count(session: Session, listing: Listing) -> int:
    """How many rows the list has."""
    statement = select(func.count()).select_from(listing.from_).where(*listing.where)
    return int(session.execute(statement).scalar_one())


def _beyond(sort: Sequence[tuple[ColumnElement[Any], bool]], key: Key, reverse: bool) -> Any:
    """The rows after `key` in the order (before it when `reverse`), as
    `a >= x AND (a > x OR (a = x AND (b > y OR ...)))`: the leading bound lets an index on
    the sort key serve the seek, whatever the directions."""
    (column, descending), value = sort[-1], key[-1]
    condition = column < value if descending != reverse else column > value
    for (column, descending), value in zip(reversed(sort[:-1]), reversed(key[:-1]), strict=True):
        after = column < value if descending != reverse else column > value
        condition = or_(after, and_(column == value, condition))
    first, descending = sort[0]
    bound = first <= key[0] if descending != reverse else first >= key[0]
    return and_(bound, condition)


def _ordered(statement: Select[Any], listing: Listing, reverse: bool) -> Select[Any]:
    return statement.order_by(
        *(c.desc() if descending != reverse else c.asc() for c, descending in listing.sort)
    )


def page_keys(
    session: Session,
    listing: Listing,
    *,
    offset: int,
    limit: int,
    total: int,
    near: Page[Any] | None = None,
) -> list[Key]:
    """The sort keys of the rows `offset` to `offset + limit` of the list (of `total`
    rows), in order. `near`, the page shown before, lets the page next to it be read by
    seeking from its first or last row."""
    limit = max(0, min(limit, total - offset))
    if limit == 0:
        return []
    statement = select(*(c for c, _ in listing.sort)).select_from(listing.from_)
    statement = statement.where(*listing.where)
    reverse = False
    if near is not None and near.keys and offset == near.offset + len(near.keys):
        statement = statement.where(_beyond(listing.sort, near.keys[-1], False))
    elif near is not None and near.keys and near.offset - limit <= offset < near.offset:
        # The page before: read backwards from the first row shown.
        reverse = True
        limit = near.offset - offset
        statement = statement.where(_beyond(listing.sort, near.keys[0], True))
    elif offset + limit >= total or total - offset - limit < offset:
        # Nearer the end: read from there, backwards (the last page skips nothing).
        reverse = True
        statement = statement.offset(total - offset - limit)
    else:
        statement = statement.offset(offset)
    found = [tuple(r) for r in session.execute(_ordered(statement, listing, reverse).limit(limit))]
    return found[::-1] if reverse else found


def read(
    session: Session,
    listing: Listing,
    rows: Callable[[list[Any]], Mapping[Any, T]],
    *,
    offset: int,
    limit: int,
    total: int | None = None,
    near: Page[Any] | None = None,
) -> Page[T]:
    """One page of the list (counted unless `total` is given; see page_keys() for
    `near`): `rows` gives the row of each primary key found (rows gone meanwhile are
    left out)."""
    if total is None:
        total = count(session, listing)
    keys = page_keys(session, listing, offset=offset, limit=limit, total=total, near=near)
    found = rows([key[-1] for key in keys])
    present = [key for key in keys if key[-1] in found]
    return Page([found[key[-1]] for key in present], total, offset, present)
