"""Studies of another archive: when the search form's AE names a remote AE, the search
runs there (C-FIND, Study Root) and the Studies view lists what it answered, drills
down to its series and instances the same way, and `R` retrieves the tagged rows, the
row under the cursor or every study found into this archive (C-MOVE, as Retrieve
tasks). What the remote answered is kept for paging; `r` asks it again."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from textual import work

from core.config import Service
from core.services import outbound, remote_query
from core.services.outbound import Entity
from core.services.paging import Page
from core.services.remote_query import RemoteRows
from core.services.studies import StudySearch
from tui.screens.study_actions import plural
from tui.widgets.choose import Choose
from tui.widgets.confirm import Confirm
from tui.widgets.view import reason

if TYPE_CHECKING:
    from tui.screens.studies import StudiesView

# What only this archive's own studies offer.
LOCAL_ONLY = frozenset(
    {
        *("attributes", "view_image", "download", "edit", "delete", "upload"),
        *("expiration", "access_control", "csv", "export", "commitment", "ian", "workitems"),
    }
)


class RemoteFailed(Exception):
    """The remote AE did not answer the query (the message names it and why)."""


class StudyRemote:
    """The remote search of StudiesView (mixed into it; `self` is the view)."""

    def remote(self: StudiesView) -> str | None:
        """The remote AE the search runs at, or None for this archive."""
        return self.criteria.remote_ae(self.services.config)

    def remote_page(
        self: StudiesView,
        remote: str,
        criteria: StudySearch,
        level: str,
        offset: int,
        limit: int,
        study: str = "",
        series: str = "",
    ) -> Page[Any]:
        """A page of what `remote` answered for `level` (asked once per search, study or
        series; called in a worker thread). Raises RemoteFailed when it did not answer."""
        key = (level, remote, criteria, study, series)
        found: RemoteRows[Any] | None = self.remote_found.get(key)
        if found is None:
            if level == "STUDY":
                found = remote_query.search(self.services, remote, criteria)
            elif level == "SERIES":
                found = remote_query.series_of(self.services, remote, study)
            else:
                found = remote_query.instances_of(self.services, remote, study, series)
            if found.error and not found.rows:
                raise RemoteFailed(found.error)
            self.remote_found[key] = found
        return found.page(offset, limit)

    def forget_remote(self: StudiesView) -> None:
        """Ask the remote again on the next read (`r`, a new search)."""
        self.remote_found.clear()

    def found_studies(self: StudiesView) -> list[Any]:
        """The studies the remote answered for the search shown."""
        key = ("STUDY", self.remote(), self.criteria, "", "")
        found = self.remote_found.get(key)
        return found.rows if found is not None else []

    @work(group="studies-action", exit_on_error=False)
    async def action_retrieve(self: StudiesView) -> None:
        """Queue a retrieve of the tagged rows, the row under the cursor, or (`*` in the
        dialog, asked again) every study found, into an archive AE of this device."""
        remote = self.remote()
        about = self.about() if remote is not None else None
        if remote is None or about is None:
            return
        entities, label = about
        storing = [ae.title for ae in self.services.config.ae if Service.STORAGE in ae.services]
        found = self.found_studies() if self.level == "STUDY" else []
        matching = f"all {len(found):,} studies found" if found else ""
        chosen = await self.app.push_screen_wait(
            Choose(
                f"Retrieve from {remote} into:",
                [(title, f"{title} (this archive)") for title in storing],
                label,
                matching,
            )
        )
        if chosen is None:
            return
        if chosen.all_matching:
            entities, label = [Entity(row.study_iuid) for row in found], matching
            ask = f"Retrieve {label} from {remote} into {chosen.option}?"
            if not await self.app.push_screen_wait(Confirm(ask, "Queue")):
                return
        try:
            _, pks = await asyncio.to_thread(
                outbound.schedule_retrieve,
                self.services,
                remote,
                entities,
                local_aet=chosen.option,
            )
        except Exception as exc:
            self.notify(reason(exc), title="Not queued", severity="error")
            return
        self.notify(f"Queued: retrieve {label} from {remote} ({plural(len(pks), 'task')})")
        self.current_table.clear_tags()
