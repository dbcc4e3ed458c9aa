"""The MPPS tab over PostgreSQL (tests/tui/test_mpps.py runs on SQLite): the same tests,
collected here again with the console's database in a private PostgreSQL schema."""

from __future__ import annotations

import pytest

from tests.tui.test_mpps import (  # noqa: F401 - collected here with this module's database
    mpps_console,
    test_filter_attributes_and_refresh,
    test_lists_steps_newest_first_and_searches,
)

pytestmark = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


@pytest.fixture
def console_db_url(db_url: str) -> str:
    return db_url
