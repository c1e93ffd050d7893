"""Benchmark: how long `imputehub` commands take to start, next to the bare interpreter.

Each command runs --repeat times in a fresh process; the median wall time is printed beside
`python -c pass` (the interpreter alone) and `python -c "import typer"` (the CLI framework
alone), so what is left is the hub's own import cost. A benchmark that prints, never a test:

    python bench/cli_startup.py
    python bench/cli_startup.py --repeat 11
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass": ["-c", "pass"],
    'python -c "import typer"': ["-c", "import typer"],
    "imputehub --help": ["-m", "imputehub", "--help"],
    "imputehub jobs list --help": ["-m", "imputehub", "jobs", "list", "--help"],
    "imputehub submit --help": ["-m", "imputehub", "submit", "--help"],
    "imputehub files check --help": ["-m", "imputehub", "files", "check", "--help"],
    "imputehub serve --help": ["-m", "imputehub", "serve", "--help"],
}


def median_seconds(args: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run([sys.executable, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    median_seconds(COMMANDS["imputehub --help"], 1)  # warm the file cache and .pyc files
    width = max(map(len, COMMANDS))
    print(f"{'command':<{width}}  median of {options.repeat}")
    for label, args in COMMANDS.items():
        print(f"{label:<{width}}  {median_seconds(args, options.repeat):6.3f} s", flush=True)


if __name__ == "__main__":
    main()
