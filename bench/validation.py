"""Benchmark: our pre-flight VCF check versus `bcftools stats` on the same bgzipped VCF.

Makes a realistic file (default 100,000 variants x 500 samples, phased GT, bgzipped with
`bgzip`) unless one is given with --file, then times both in the same run and prints the
figures side by side. A benchmark that prints, never a test:

    python bench/validation.py                      # make the default file, time both
    python bench/validation.py --variants 20000 --samples 100 --format GT:DS
    python bench/validation.py --file my.vcf.gz --repeat 3
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable
from pathlib import Path

from imputehub.domain.vcf import HG19_LENGTHS
from imputehub.files.vcf_check import VcfReport, check_path

POOL = 512  # distinct genotype rows to draw from: generation stays fast, data stays varied


def genotype_rows(samples: int, fmt: str, rng: random.Random) -> list[str]:
    rows = []
    for _ in range(POOL):
        freq = rng.random() * 0.5
        calls = []
        for _sample in range(samples):
            a = int(rng.random() < freq)
            b = int(rng.random() < freq)
            call = f"{a}|{b}"
            if fmt == "GT:DS":
                call += f":{a + b}"
            elif fmt == "GT:DS:GP":
                call += f":{a + b}:0.1,0.8,0.1"
            calls.append(call)
        rows.append("\t".join(calls))
    return rows


def make_file(path: Path, *, variants: int, samples: int, fmt: str, seed: int) -> None:
    """A phased, single-chromosome VCF, compressed by `bgzip` as researchers do."""
    rng = random.Random(seed)
    rows = genotype_rows(samples, fmt, rng)
    names = "\t".join(f"SAMPLE{i:05d}" for i in range(samples))
    header = (
        "##fileformat=VCFv4.2\n"
        f"##contig=<ID=20,length={HG19_LENGTHS['20']},assembly=GRCh37>\n"
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
        '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Dosage">\n'
        '##FORMAT=<ID=GP,Number=G,Type=Float,Description="Genotype probabilities">\n'
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{names}\n"
    )
    bases = "ACGT"
    with path.open("wb") as out:
        bgzip = subprocess.Popen(["bgzip", "-c", "-@", "2"], stdin=subprocess.PIPE, stdout=out)
        assert bgzip.stdin is not None
        bgzip.stdin.write(header.encode())
        position = 60_000
        # Mean gap chosen so the last position stays inside chromosome 20 on either build.
        widest = max(2, 2 * 60_000_000 // variants)
        batch: list[str] = []
        for index in range(variants):
            position += rng.randint(1, widest)
            ref = bases[rng.randrange(4)]
            alt = bases[(bases.index(ref) + rng.randint(1, 3)) % 4]
            if index % 50 == 0:  # a few indels and multi-allelic sites, as real data has
                alt = ref + "T" if index % 100 else f"{alt},{ref}C"
            batch.append(
                f"20\t{position}\trs{index}\t{ref}\t{alt}\t.\tPASS\t.\t{fmt}\t"
                f"{rows[rng.randrange(POOL)]}\n"
            )
            if len(batch) == 1000:
                bgzip.stdin.write("".join(batch).encode())
                batch.clear()
        bgzip.stdin.write("".join(batch).encode())
        bgzip.stdin.close()
        if bgzip.wait() != 0:
            sys.exit("bgzip failed")


def uncompressed_size(path: Path) -> int:
    size = 0
    decompressor = zlib.decompressobj(wbits=31)
    with path.open("rb") as handle:
        data = handle.read(1 << 20)
        while data:
            size += len(decompressor.decompress(data))
            if decompressor.eof:
                data = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
                if data:
                    continue
            data = handle.read(1 << 20)
    return size


def best_of(repeat: int, run: Callable[[], object]) -> tuple[float, object]:
    best = float("inf")
    result: object = None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - start)
    return best, result


def bcftools_stats(path: Path, *options: str) -> str:
    done = subprocess.run(
        ["bcftools", "stats", *options, str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file", type=Path, help="an existing bgzipped VCF to use")
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--format", default="GT", choices=["GT", "GT:DS", "GT:DS:GP"])
    parser.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    for tool in ("bcftools", "bgzip"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed: apt-get install bcftools tabix")

    with tempfile.TemporaryDirectory(prefix="imputehub-bench-") as scratch:
        path = args.file
        if path is None:
            path = Path(scratch) / "bench.vcf.gz"
            start = time.perf_counter()
            make_file(
                path,
                variants=args.variants,
                samples=args.samples,
                fmt=args.format,
                seed=args.seed,
            )
            made = time.perf_counter() - start
            print(
                f"made {path.name}: {args.variants:,} variants x {args.samples:,} samples, "
                f"FORMAT {args.format}, in {made:.1f} s"
            )
        compressed = path.stat().st_size
        plain = uncompressed_size(path)
        print(f"file: {compressed / 1e6:.1f} MB bgzipped, {plain / 1e6:.1f} MB uncompressed")

        ours, report = best_of(args.repeat, lambda: check_path(path))
        theirs, _ = best_of(args.repeat, lambda: bcftools_stats(path))
        per_sample, _ = best_of(args.repeat, lambda: bcftools_stats(path, "--samples", "-"))
        assert isinstance(report, VcfReport)

        print()
        print(f"{'tool':<34}{'seconds':>9}{'MB/s bgzipped':>15}{'MB/s plain':>12}")
        rows = (
            ("imputehub check (every genotype)", ours),
            ("bcftools stats (sites only)", theirs),
            ("bcftools stats -s - (genotypes)", per_sample),
        )
        for name, seconds in rows:
            print(
                f"{name:<34}{seconds:>9.2f}{compressed / 1e6 / seconds:>15.1f}"
                f"{plain / 1e6 / seconds:>12.1f}"
            )
        print(
            f"\nimputehub check takes {ours / theirs:.2f}x the time of `bcftools stats` and "
            f"{ours / per_sample:.2f}x that of `bcftools stats -s -`"
        )
        summary = {
            k: report.to_dict()[k]
            for k in ("variants", "samples", "snps", "indels", "multiallelic", "phased_share")
        }
        print("report:", json.dumps(summary), "problems:", [p.code for p in report.problems])


if __name__ == "__main__":
    main()
