"""Alembic environment: the URL comes from the service settings, never from an ini file."""

from alembic import context

from newsletter.db import engine_for
from newsletter.models import Base

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "newsletter.migrate sets sqlalchemy.url"

with engine_for(url).connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
