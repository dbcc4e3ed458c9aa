"""The Work Items tab over PostgreSQL (tests/tui/test_uwl.py runs on SQLite): its search
and every action, collected here again with the console's database in a private
PostgreSQL schema."""

from __future__ import annotations

import pytest

from tests.tui.test_uwl import (  # noqa: F401 - collected here with this module's database
    items,
    test_cancel_all_matching,
    test_cancel_the_cursor_row_and_tagged_rows,
    test_change_state,
    test_clone_the_cursor_row_and_tagged_rows,
    test_create_a_blank_work_item,
    test_create_from_a_template,
    test_csv_of_the_list,
    test_delete_asks_and_deletes,
    test_edit_a_work_item,
    test_lists_work_items_and_searches,
    test_reschedule_all_matching,
    test_reschedule_moves_a_scheduled_one_and_replaces_the_others,
    test_subscribe_and_unsubscribe_a_remote_ae,
)

pytestmark = [
    pytest.mark.parametrize("db_url", ["postgresql"], indirect=True),
    pytest.mark.usefixtures("in_utc"),
]


@pytest.fixture
def console_db_url(db_url: str) -> str:
    return db_url
