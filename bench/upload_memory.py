"""Benchmark: the hub's peak memory while it receives a small and a large upload.

For each size (default 100 MB and 2 GB) a fresh `imputehub serve` receives one file of
random bytes through the resumable upload API (parts, 4 at a time, then complete, which
joins the parts and streams the whole file through SHA-256 and the VCF check; random bytes
end in 422 invalid_vcf after that full pass). The server's peak resident memory (VmHWM in
/proc/<pid>/status) is read after start-up, reset, and read again after the upload. Memory
that stays flat means nothing was read whole:

    python bench/upload_memory.py                     # 100M and 2G
    python bench/upload_memory.py --sizes 50M,500M    # a quick run
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

from upload import make_random_file, memory_kib, reset_peak, running_hub, upload

from imputehub.cli.upload import parse_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100M,2G", help="comma-separated (default 100M,2G)")
    parser.add_argument("--parallel", type=int, default=4, help="parts in flight (default 4)")
    parser.add_argument("--part-size", default="8M", help="bytes per part (default 8M)")
    parser.add_argument("--dir", type=Path, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    sizes = [parse_size(text, "--sizes") for text in args.sizes.split(",")]
    part_size = parse_size(args.part_size, "--part-size")

    results = []
    for size in sizes:
        work = Path(tempfile.mkdtemp(prefix="imputehub-bench-", dir=args.dir))
        try:
            source = work / "random.bin"
            make_random_file(source, size)
            with running_hub(work / "hub", work / "hub.log") as hub:
                pid = hub.process.pid
                idle = memory_kib(pid, "VmHWM")
                reset_peak(pid)
                times = upload(hub, source, parallel=args.parallel, part_size=part_size)
                peak = memory_kib(pid, "VmHWM")
                after = memory_kib(pid, "VmRSS")
            results.append((size, idle, peak, after, times.parts + times.complete, times.outcome))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    print(f"server: imputehub serve (SQLite, local storage); parts of {part_size} bytes,")
    print(f"{args.parallel} at a time, then complete (random bytes: measured up to and including")
    print("the complete call, which reads the whole file once and answers 422 invalid_vcf)\n")
    print(
        f"{'upload':>10}{'peak at start':>15}{'peak in upload':>16}{'RSS after':>12}{'seconds':>10}"
    )
    for size, idle, peak, after, seconds, _outcome in results:
        print(
            f"{size / 1e6:8.0f}MB{idle / 1024:12.1f}MiB{peak / 1024:13.1f}MiB"
            f"{after / 1024:9.1f}MiB{seconds:10.1f}"
        )
    if len(results) > 1:
        smallest, largest = results[0], results[-1]
        growth = (largest[2] - smallest[2]) / 1024
        print(
            f"\npeak at {largest[0] / 1e6:.0f} MB minus peak at {smallest[0] / 1e6:.0f} MB: "
            f"{growth:+.1f} MiB for {(largest[0] - smallest[0]) / 1e6:.0f} MB more data"
        )
    print("complete answered:", ", ".join(sorted({r[5] for r in results})))


if __name__ == "__main__":
    main()
