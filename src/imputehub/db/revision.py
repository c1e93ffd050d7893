"""The newest migration's revision, known without loading alembic.

`api` and `worker` refuse a database that is not at this revision; reading it from here
instead of parsing every migration file with alembic saves a worker a third of a second of
start-up (tests/integration/test_migrations.py checks it matches alembic's head, and
`make migration` rewrites it).
"""

HEAD = "0010"
