"""Alembic environment: runs on the connection handed in by ca.storage.migrate."""
from alembic import context

from ca.storage.schema import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
