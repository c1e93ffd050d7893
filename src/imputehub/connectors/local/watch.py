"""Noticing the end of a local run as it happens, instead of at the next poll.

A poll reads the run's state file every `poll_interval` seconds, and the worker picks the
due poll up within its own poll interval: most of a short job's time in the hub used to be
those two waits. While the worker follows a run, `RunWatches` keeps one cheap waiter per run
and calls back as soon as the run is over — its state is final, its runner died (the poll
then restarts it at once), or its directory went (a cancel):

- the runner lives on this host (Linux): a pidfd (`os.pidfd_open`) on the runner, in the
  event loop's selector (`add_reader`): it becomes readable when the runner exits, which it
  does right after writing its final state. No thread, no timer, no CPU while Beagle runs;
  the state file is still re-read every `RECHECK_SECONDS`, in case a runner lingers;
- otherwise (another machine shares the engine directory, the runner has not yet written
  its pid, or no pidfd): one `stat` of the state file every `STAT_SECONDS`, and a read of it
  only when it changed (the runner's heartbeat rewrites it every 2 s).

A waiter is an asyncio task holding at most one file descriptor; it holds no worker
concurrency slot and no lease, so one per running local run (bounded by the runs the engine
takes at once) costs next to nothing. Waiters live in the process that follows the run and
die with it: a restarted worker starts them again (at start-up, and at every poll), and
meanwhile the ordinary polls still notice the end.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from imputehub.connectors.local.runs import RunDir, RunState, runner_alive

logger = logging.getLogger("imputehub.engine")

STAT_SECONDS = 0.25
RECHECK_SECONDS = 5.0

OnEnd = Callable[[], Awaitable[None]]


async def wait_for_end(run: RunDir) -> None:
    """Return once `run` is over: final state, runner gone from this host, or no directory."""
    while True:
        state = await asyncio.to_thread(_read, run)
        if state is None or state.final:
            return
        alive = runner_alive(state) if state.pid is not None else None
        if alive is False:
            return  # died without a final word: the next poll restarts it
        if alive and state.pid is not None and await _wait_exit(state.pid, state):
            continue  # it exited (or a recheck is due): see what it left
        await _wait_change(run)


def _read(run: RunDir) -> RunState | None:
    if not run.path.is_dir():
        return None
    try:
        return run.state()
    except (OSError, ValueError):
        return RunState()  # being replaced or unreadable for a moment: keep watching


async def _wait_exit(pid: int, state: RunState) -> bool:
    """Wait (at most RECHECK_SECONDS) for process `pid` to exit; False if no pidfd."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return False
    try:
        fd = pidfd_open(pid)
    except OSError:
        return True  # gone already: the caller re-reads the state
    loop = asyncio.get_running_loop()
    exited = loop.create_future()
    try:
        if runner_alive(state) is not True:
            return True  # the pid was reused between the check and the open
        loop.add_reader(fd, _settle, exited)
        try:
            await asyncio.wait({exited}, timeout=RECHECK_SECONDS)
        finally:
            loop.remove_reader(fd)
            exited.cancel()
    finally:
        os.close(fd)
    return True


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _wait_change(run: RunDir) -> None:
    """Wait until the state file changes (or appears, or goes), by stat every STAT_SECONDS."""
    # In a thread: on a network file system a stat may block.
    before = await asyncio.to_thread(_stamp, run)
    while True:
        await asyncio.sleep(STAT_SECONDS)
        if await asyncio.to_thread(_stamp, run) != before:
            return


def _stamp(run: RunDir) -> tuple[int, int, int] | None:
    try:
        info = run.state_file.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_ino, info.st_size)


class RunWatches:
    """One waiter per run followed in this process; `on_end` is called once it is over."""

    def __init__(self, runs: Callable[[str], RunDir]) -> None:
        self._runs = runs
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return sum(1 for task in self._tasks.values() if not task.done())

    def watch(self, external_id: str, on_end: OnEnd) -> None:
        """Call `on_end` once the run is over, unless a waiter for it is already on."""
        loop = asyncio.get_running_loop()
        current = self._tasks.get(external_id)
        if current is not None and not current.done() and current.get_loop() is loop:
            return
        run = self._runs(external_id)
        task = loop.create_task(self._follow(external_id, run, on_end), name=f"watch-{run}")
        self._tasks[external_id] = task

    async def _follow(self, external_id: str, run: RunDir, on_end: OnEnd) -> None:
        try:
            await wait_for_end(run)
        finally:
            # Gone from the registry before the callback: a poll that asks to watch the run
            # again from now on gets a new waiter, which sees the end at once.
            if self._tasks.get(external_id) is asyncio.current_task():
                del self._tasks[external_id]
        try:
            await on_end()
        except Exception:
            # The ordinary poll notices the end instead, one poll interval later.
            logger.warning(
                "could not act on the end of a local run",
                exc_info=True,
                extra={"action": "local_run_end_failed", "external_id": external_id},
            )

    async def stop(self) -> None:
        """Cancel every waiter of the running event loop (the worker stops)."""
        loop = asyncio.get_running_loop()
        tasks = [task for task in self._tasks.values() if task.get_loop() is loop]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks = {key: task for key, task in self._tasks.items() if not task.done()}
