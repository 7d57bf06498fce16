"""Alembic environment of the inspection log. store.open_log runs it programmatically on the connection it
passes in `config.attributes["connection"]`; no alembic.ini is needed."""

from alembic import context

from steelinspect.inspect_log.models import Base

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it; later migrations get that for free.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
