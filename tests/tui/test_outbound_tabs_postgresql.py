"""The Export, Retrieve and Storage commitments tabs over PostgreSQL (the tests of
tests/tui/test_outbound_tabs.py run on SQLite): the filters (the exporter is read from the
task's JSON parameters), bulk actions and live progress collected here again with the
console's database in a private PostgreSQL schema."""

from __future__ import annotations

import pytest

from tests.tui.test_outbound_tabs import (  # noqa: F401 - collected here with this module's database
    console_archive,
    outbound,
    test_commitments_list_filter_and_delete,
    test_export_cancel_cursor_tagged_and_all_matching,
    test_export_filters,
    test_export_reschedule_to_another_exporter_and_delete,
    test_progress_changes_in_place_and_the_cursor_stays,
    test_retrieve_lists_filters_and_cancels,
)

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def console_db_url(db_url: str) -> str:
    return db_url
