"""The MWL tab's searches and actions over PostgreSQL (tests/tui/test_mwl.py runs them on
SQLite): the same tests, collected here again with the console's database in a private
PostgreSQL schema."""

from __future__ import annotations

import pytest

from tests.tui.test_mwl import (  # noqa: F401 - collected here with this module's database
    items,
    test_create_generates_the_ids_left_blank,
    test_csv_of_the_list,
    test_delete_asks_first,
    test_delete_tagged_rows,
    test_edit_saves_the_changed_values,
    test_lists_items_and_searches,
    test_status_of_all_matching_says_the_count_and_asks,
    test_status_of_tagged_rows,
    test_status_of_the_cursor_row,
)

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def console_db_url(db_url: str) -> str:
    return db_url
