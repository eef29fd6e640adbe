"""`udun db ...`: the database schema (Alembic revisions in ca/migrations)."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from udun.common import info, settings

if TYPE_CHECKING:      # SQLAlchemy and Alembic load only when a command runs
    from sqlalchemy.engine import Engine

    from config.settings import Settings


def _engine(conf: Settings) -> Engine:
    from ca.storage.engine import make_engine

    return make_engine(conf)


def _shown(revision: str | None) -> str:
    return revision if revision is not None else "none (empty database)"


@click.group("db")
def db_group() -> None:
    """The database schema: show the current revision, upgrade to the newest.

    The database is UDUN_DATABASE_URL (default: SQLite under UDUN_HOME). Every `udun`
    command that opens the CA upgrades it by itself; these commands are for deploy steps
    and for looking (with PostgreSQL, upgrade from one place before starting servers).
    """


@db_group.command("current")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"current": REV|null, "head": REV, "up_to_date": BOOL} on stdout.')
def db_current(as_json: bool) -> None:
    """Show the database's revision, the newest this udun knows, and whether to upgrade.

    Exits 0 whether or not an upgrade is due; a database at a revision newer than this
    udun knows is reported (up_to_date false) and `udun db upgrade` refuses it.
    """
    from ca.storage.migrate import revisions, schema_state

    current, head = schema_state(_engine(settings()))
    if as_json:
        click.echo(json.dumps({"current": current, "head": head, "up_to_date": current == head}))
        return
    click.echo(f"current: {_shown(current)}")
    click.echo(f"head:    {head}")
    if current == head:
        click.echo("up to date")
    elif current is not None and current not in revisions():
        click.echo(f"revision {current} is unknown to this udun (made by a newer version): do not use it here")
    else:
        click.echo("upgrade due: run `udun db upgrade`")


@db_group.command("upgrade")
@click.option("--to", "target", default="head", show_default=True, metavar="REV",
              help="Stop at this revision instead of the newest (never goes down).")
def db_upgrade(target: str) -> None:
    """Upgrade the database schema to the newest revision (or --to REV), in one transaction.

    Running it again does nothing. A database at a revision this udun does not know (a
    newer udun migrated it) is refused, as is a --to below the current revision.
    """
    from ca.storage.migrate import upgrade

    conf = settings()
    before, after = upgrade(_engine(conf), target, conf.home / "migrate.lock")
    if before == after:
        info(f"already at {after}" + (" (head)" if target == "head" else "") + ": nothing to do")
    else:
        info(f"upgraded {_shown(before)} -> {after}")
