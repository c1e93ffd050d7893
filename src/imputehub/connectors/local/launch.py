"""Start a local run's runner, detached: `python -m imputehub.connectors.local.launch RUN_DIR`.

The connector's submit waits for this process to exit, so it forks before anything else:
the parent exits at once (Python's start-up only, a few tens of milliseconds), and the
child — reparented to init, in a session and process group of its own whose id is its pid,
so a restart can kill whatever is left of it by that id — imports and runs the runner
(`runner.py`). Nothing here imports more than the standard library.

A runner that cannot even start (a broken installation) writes its traceback to the run's
`runner.log` and never records a pid; the poll treats the run as lost once it is overdue.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m imputehub.connectors.local.launch RUN_DIR", file=sys.stderr)
        return 2
    if os.fork() > 0:
        os._exit(0)  # the parent: the run is started
    os.setsid()  # its own session and group, led by the runner's own pid
    runner = importlib.import_module("imputehub.connectors.local.runner")
    code: int = runner.main(argv)
    # The final state is written and the lock let go: exit now, without the interpreter's
    # tear-down, since the worker learns of the run's end from this process's exit.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
