"""Autogenerate a migration from the models: python scripts/make_migration.py "message" [rev_id]."""

import sys
import tempfile
from pathlib import Path

from alembic import command

from imputehub.db.migrate import alembic_config

with tempfile.TemporaryDirectory() as tmp:
    url = f"sqlite+aiosqlite:///{Path(tmp) / 'schema.db'}"
    config = alembic_config(url)
    command.upgrade(config, "head")
    command.revision(
        config,
        message=sys.argv[1],
        autogenerate=True,
        rev_id=sys.argv[2] if len(sys.argv) > 2 else None,
    )
