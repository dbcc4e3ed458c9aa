"""The instances of a study, series or instance as outbound N- services reference them
(storage commitment requests, IAN): their series, SOP class and SOP instance UIDs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from core.config import View
from core.db.models import Instance, Series, Study
from core.db.views import instance_visible
from core.services.context import ServiceContext


class NothingToReference(LookupError):
    """The study, series or instance is not in the archive (or has no instance shown)."""


@dataclass(frozen=True)
class Reference:
    """One instance: its series and its SOP class and instance UIDs."""

    series_iuid: str
    sop_cuid: str
    sop_iuid: str


def referenced_instances(
    ctx: ServiceContext,
    study_iuid: str,
    series_iuid: str | None = None,
    sop_iuid: str | None = None,
) -> list[Reference]:
    """The instances of a study (or of one of its series, or one instance) the regular
    view shows, by series then instance number; NothingToReference when there are none."""
    stmt = (
        select(Series.series_iuid, Instance.sop_cuid, Instance.sop_iuid)
        .join(Series, Instance.series_fk == Series.pk)
        .join(Study, Series.study_fk == Study.pk)
        .where(Study.study_iuid == study_iuid, instance_visible(View.REGULAR))
        .order_by(
            Series.series_number.asc().nulls_last(),
            Series.pk,
            Instance.instance_number.asc().nulls_last(),
            Instance.pk,
        )
    )
    if series_iuid:
        stmt = stmt.where(Series.series_iuid == series_iuid)
    if sop_iuid:
        stmt = stmt.where(Instance.sop_iuid == sop_iuid)
    with ctx.db.read() as session:
        found = [Reference(*row) for row in session.execute(stmt)]
    if not found:
        level, uid = (
            ("Instance", sop_iuid)
            if sop_iuid
            else ("Series", series_iuid)
            if series_iuid
            else ("Study", study_iuid)
        )
        raise NothingToReference(f"{level} {uid} not found in the archive")
    return found
