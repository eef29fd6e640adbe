"""`udun db ...`: the database schema (Alembic revisions in ca/migrations)."""
from __future__ import annotations

import click


@click.group("db")
def db_group() -> None:
    """The database schema: show the current revision, upgrade to the newest."""
