"""Autogenerate a migration from the models: python scripts/make_migration.py "message" [rev_id]."""

import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

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
    # The head that `api` and `worker` check for without loading alembic (db/revision.py).
    [head] = ScriptDirectory.from_config(config).get_heads()
    module = Path(__file__).resolve().parents[1] / "src" / "imputehub" / "db" / "revision.py"
    text = module.read_text()
    start = text.index('HEAD = "')
    end = text.index('"', start + len('HEAD = "'))
    module.write_text(text[:start] + f'HEAD = "{head}' + text[end:])
