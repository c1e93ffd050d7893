"""Commands run the way a person runs them: in a terminal (a pseudo-terminal), answering
its prompts, so hidden password prompts and progress bars behave as they do for users."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import termios
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Colours, cursor moves and the like, dropped from the transcript.
_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]")


@dataclass(frozen=True)
class Transcript:
    status: int
    text: str  # what the terminal showed, escape sequences removed, lines ending in \n


def run_in_terminal(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: dict[str, str],
    answers: Sequence[tuple[str, str]] = (),
    timeout: float = 300.0,
) -> Transcript:
    """Run argv on a new pseudo-terminal; type each answer after its prompt appears, in order.

    Raises AssertionError (with the transcript) if the command outlives `timeout`.
    """
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling tty and stdin/stdout/stderr
        try:
            os.chdir(cwd)
            os.execvpe(argv[0], list(argv), env)  # noqa: S606 - argv as given, no shell
        finally:
            os._exit(127)
    # A terminal of a usual size, so progress bars lay out as they do for people.
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    output = bytearray()
    pending = list(answers)
    answered_at = 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                os.killpg(pid, signal.SIGKILL)
                raise AssertionError(f"{argv} did not finish within {timeout} s:\n{_clean(output)}")
            ready, _, _ = select.select([fd], [], [], 0.2)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal (it exited)
                break
            if not data:
                break
            output += data
            if pending and pending[0][0].encode() in output[answered_at:]:
                prompt, answer = pending.pop(0)
                answered_at = output.index(prompt.encode(), answered_at) + len(prompt)
                os.write(fd, answer.encode() + b"\n")
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return Transcript(status=os.waitstatus_to_exitcode(status), text=_clean(output))


def _clean(output: bytes) -> str:
    text = _ESCAPES.sub(b"", bytes(output)).decode(errors="replace")
    return text.replace("\r\n", "\n").replace("\r", "\n")
