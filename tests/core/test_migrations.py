"""The migrations build the schema the models describe, on SQLite and PostgreSQL: a
column, index or table added to one and not the other is named here."""

from __future__ import annotations

import warnings

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core.db.engine import Database
from core.db.models import Base


def test_the_migrated_schema_is_the_models_schema(db: Database) -> None:
    with db.engine.connect() as conn, warnings.catch_warnings():
        # Expression indexes (the study list's sort key) cannot be reflected to compare.
        warnings.filterwarnings("ignore", message=".*expression-based index")
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []
