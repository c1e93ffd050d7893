"""Benchmark: a federated job's analysis (comparison + merge) of two children, next to
`bcftools isec` and `bcftools merge` on the same files.

Generates, streaming through `bgzip`, two children's dose VCFs of one chromosome
(`--variants` x `--samples`, default 1,000,000 x 500):

  a   Beagle-like: INFO DR2/AF/IMP, FORMAT GT:DS with Beagle's short dosages ('0', '0.12')
  b   Minimac4-like: INFO AF/MAF/R2/IMPUTED|TYPED, FORMAT GT:DS:HDS:GP (3 decimals), the
      samples in reverse order, 5 % of the sites with REF/ALT swapped (dosage 2 - DS)

with 2 % of the sites in one child only, typed sites every 20th, and an input VCF (GT) at
the typed sites. Sample columns are drawn from a pool of pre-formatted rows, so generation
costs little more than bgzip. Then, each in a child process timed wall-clock, with its peak
RSS from GNU time (`/usr/bin/time -f %M`; it covers the bgzip/tabix processes it waited for):

  analyse         imputehub.federation.analysis.analyse (comparison + merged VCF + index)
  bcftools isec   `bcftools isec -n=2` (the shared sites list; needs the tabix indexes)
  bcftools merge  `bcftools merge --force-samples -Oz` (all columns side by side), on a and
                  a copy of b without the swaps (it stops at a REF that differs)

The bcftools runs get both children with the same chromosome naming ('20'); they compute no
statistics (isec without `-c` does not pair REF/ALT swaps; merge keeps every column of both):
a reference for "reading both files once", not the same work. The generated files are
removed afterwards unless `--keep`. A benchmark that prints figures, never a test:

    python bench/federation.py --variants 20000 --samples 100      # a quick run
    python bench/federation.py                                     # 1 M x 500 (slow)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

POOL = 97  # distinct rows of sample columns
SWAPPED = 0.05
ONLY_ONE = 0.02
TYPED_EVERY = 20
BGZIP = shutil.which("bgzip") or "/usr/bin/bgzip"
TABIX = shutil.which("tabix") or "/usr/bin/tabix"
BCFTOOLS = shutil.which("bcftools") or "/usr/bin/bcftools"

BEAGLE_META = (
    "##fileformat=VCFv4.2\n"
    "##contig=<ID=20,length=64444167>\n"
    '##INFO=<ID=AF,Number=A,Type=Float,Description="Estimated ALT Allele Frequencies">\n'
    '##INFO=<ID=DR2,Number=A,Type=Float,Description="Dosage R-Squared">\n'
    '##INFO=<ID=IMP,Number=0,Type=Flag,Description="Imputed marker">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=DS,Number=A,Type=Float,Description="estimated ALT dose">\n'
)
MINIMAC_META = (
    "##fileformat=VCFv4.2\n"
    "##contig=<ID=20,length=64444167>\n"
    '##INFO=<ID=AF,Number=1,Type=Float,Description="Alternate Allele Frequency">\n'
    '##INFO=<ID=MAF,Number=1,Type=Float,Description="Minor Allele Frequency">\n'
    '##INFO=<ID=R2,Number=1,Type=Float,Description="Estimated Imputation Accuracy">\n'
    '##INFO=<ID=IMPUTED,Number=0,Type=Flag,Description="Marker was imputed">\n'
    '##INFO=<ID=TYPED,Number=0,Type=Flag,Description="Marker was genotyped">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Alternate Allele Dosage">\n'
    '##FORMAT=<ID=HDS,Number=2,Type=Float,Description="Haploid Alternate Allele Dosage">\n'
    '##FORMAT=<ID=GP,Number=3,Type=Float,Description="Posterior Probabilities">\n'
)
COLUMNS = "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"
GENOTYPES = ("0|0", "0|1", "1|1")


def _beagle_ds(value: float) -> str:
    text = f"{value:.2f}".rstrip("0").rstrip(".")
    return text or "0"


def _pools(samples: int, rng: np.random.Generator) -> dict[str, list[bytes]]:
    """Pre-formatted sample columns: a's, b's (reversed order, and flipped), the input's."""
    out: dict[str, list[bytes]] = {"a": [], "b": [], "b_flipped": [], "input": []}
    for _ in range(POOL):
        frequency = float(rng.uniform(0.01, 0.5))
        truth = rng.binomial(2, frequency, samples).astype(float)
        a = np.clip(truth + rng.normal(0, 0.2, samples), 0, 2)
        b = np.clip(truth + rng.normal(0, 0.25, samples), 0, 2)
        out["a"].append("\t".join(f"{GENOTYPES[int(v + 0.5)]}:{_beagle_ds(v)}" for v in a).encode())
        for key, values in (("b", b), ("b_flipped", 2 - b)):  # flipped: dosage of REF
            out[key].append(
                "\t".join(
                    f"{GENOTYPES[int(d + 0.5)]}:{d:.3f}:{d / 2:.3f},{d / 2:.3f}:0.1,0.2,0.7"
                    for d in values[::-1]
                ).encode()
            )
        out["input"].append("\t".join(("0/0", "0/1", "1/1")[int(t)] for t in truth).encode())
    return out


def _zipper(path: Path, threads: int) -> tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]:
    handle = path.open("wb")
    process = subprocess.Popen(
        [BGZIP, "-c", "-@", str(threads)], stdin=subprocess.PIPE, stdout=handle
    )
    assert process.stdin is not None
    return process, process.stdin, handle


def generate(
    work: Path, variants: int, samples: int, seed: int, threads: int, *, twin: bool = True
) -> list[Path]:
    """a.dose.vcf.gz, b.dose.vcf.gz, input.vcf.gz and b-unswapped.dose.vcf.gz (b without the
    swaps: `bcftools merge` stops at a REF that differs; only with `twin`, else /dev/null)
    in `work`, indexed with tabix."""
    rng = np.random.default_rng(seed)
    pools = _pools(samples, rng)
    names = [f"S{n:05d}" for n in range(samples)]
    paths = [
        work / "a.dose.vcf.gz",
        work / "b.dose.vcf.gz",
        work / "input.vcf.gz",
        work / "b-unswapped.dose.vcf.gz" if twin else Path(os.devnull),
    ]
    zippers = [_zipper(path, threads) for path in paths[:3]]
    if twin:
        zippers.append(_zipper(paths[3], threads))
    (_, a, _), (_, b, _), (_, typed, _) = zippers[:3]
    copy: IO[bytes] = zippers[3][1] if twin else open(os.devnull, "wb")  # noqa: SIM115
    a.write((BEAGLE_META + COLUMNS + "\tFORMAT\t" + "\t".join(names) + "\n").encode())
    for out in (b, copy):
        out.write((MINIMAC_META + COLUMNS + "\tFORMAT\t" + "\t".join(names[::-1]) + "\n").encode())
    typed.write(
        (
            "##fileformat=VCFv4.2\n##contig=<ID=20,length=64444167>\n"
            '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
            + COLUMNS
            + "\tFORMAT\t"
            + "\t".join(names)
            + "\n"
        ).encode()
    )
    chunk = 10_000
    pos = 60_000
    bases = np.array(list(b"ACGT"), np.uint8)
    for start in range(0, variants, chunk):
        size = min(chunk, variants - start)
        steps = rng.integers(1, 60, size)
        pool = rng.integers(0, POOL, size)
        r2a = rng.random(size)
        r2b = rng.random(size)
        where = rng.random(size)
        swap = rng.random(size) < SWAPPED
        refs = rng.integers(0, 4, size)
        alts = (refs + rng.integers(1, 4, size)) % 4
        for i in range(size):
            pos += int(steps[i])
            ref, alt = bytes([bases[refs[i]]]), bytes([bases[alts[i]]])
            index = start + i
            is_typed = index % TYPED_EVERY == 0
            row = int(pool[i])
            if where[i] >= ONLY_ONE / 2:  # in a (else b only)
                flag = b"" if is_typed else b";IMP"
                a.write(
                    b"20\t%d\t.\t%s\t%s\t.\tPASS\tDR2=%.3f;AF=0.2%s\tGT:DS\t%s\n"
                    % (pos, ref, alt, r2a[i], flag, pools["a"][row])
                )
            if where[i] < 1 - ONLY_ONE / 2:  # in b (else a only)
                flag = b"TYPED" if is_typed else b"IMPUTED"
                plain = (
                    b"20\t%d\t.\t%s\t%s\t.\tPASS\tAF=0.2;MAF=0.2;R2=%.3f;%s\tGT:DS:HDS:GP\t%s\n"
                    % (pos, ref, alt, r2b[i], flag, pools["b"][row])
                )
                copy.write(plain)
                if swap[i]:
                    b.write(
                        b"20\t%d\t.\t%s\t%s\t.\tPASS\tAF=0.8;MAF=0.2;R2=%.3f;%s\tGT:DS:HDS:GP\t%s\n"
                        % (pos, alt, ref, r2b[i], flag, pools["b_flipped"][row])
                    )
                else:
                    b.write(plain)
            if is_typed:
                typed.write(
                    b"20\t%d\t.\t%s\t%s\t.\tPASS\t.\tGT\t%s\n"
                    % (pos, ref, alt, pools["input"][row])
                )
    for process, stdin, handle in zippers:
        stdin.close()
        if process.wait() != 0:
            raise SystemExit("bgzip failed while generating")
        handle.close()
    if not twin:
        copy.close()
    for path in paths[:4] if twin else paths[:3]:
        subprocess.run([TABIX, "-f", "-p", "vcf", str(path)], check=True)
    return paths


def measured(command: Sequence[str]) -> tuple[float, int, str]:
    """(wall seconds, peak RSS in MB, standard output) of one child process; its messages are
    shown only when it fails.

    The peak comes from GNU time (`/usr/bin/time -f %M`): a process forked from this one
    would report at least this Python's own size (ru_maxrss survives exec). Without GNU
    time, `os.wait4` gives the figure, with that floor."""
    gnu_time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)
    with (
        tempfile.TemporaryFile() as output,
        tempfile.TemporaryFile() as errors,
        tempfile.NamedTemporaryFile(mode="r") as peak,
    ):
        full = [gnu_time, "-f", "%M", "-o", peak.name, *command] if gnu_time else list(command)
        started = time.perf_counter()
        process = subprocess.Popen(full, stdout=output, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            sys.stderr.write(errors.read().decode("utf-8", "replace"))
            raise SystemExit(f"{command[0]} failed with exit code {process.returncode}")
        output.seek(0)
        text = output.read(100_000).decode("utf-8", "replace")
        kib = int(peak.read().split()[-1]) if gnu_time else usage.ru_maxrss
    return seconds, kib // 1024, text


def run_analysis(arguments: list[str]) -> None:
    """In the child process: analyse the generated files, print the outcome as JSON."""
    from imputehub.federation.analysis import ChildDoses, analyse

    work = Path(arguments[0])
    result = analyse(
        [
            ChildDoses(key="a", label="Beagle-like", files=(work / "a.dose.vcf.gz",)),
            ChildDoses(key="b", label="Minimac-like", files=(work / "b.dose.vcf.gz",)),
        ],
        [work / "input.vcf.gz"],
        work / "analysis",
        bgzip=BGZIP,
        tabix=TABIX,
    )
    comparison = result.comparison
    pair = comparison.pairs[0]
    print(
        json.dumps(
            {
                "variants": [c.variants for c in comparison.children],
                "shared": pair.shared_sites,
                "swapped": pair.swapped_sites,
                "correlation": pair.correlation,
                "typed": [(t.matched_sites, t.r2, t.concordance) for t in comparison.typed],
            }
        )
    )


def main() -> None:
    if sys.argv[1:2] == ["--run-analysis"]:
        run_analysis(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--workdir", type=Path, help="where to generate (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1, help="bgzip threads for generation")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--baselines",
        default="isec,merge",
        help="which bcftools runs to time next to ours: isec, merge or both (merge is the "
        "slow one: it rewrites every sample column)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="imputehub-federation-", dir=args.workdir))
    try:
        started = time.perf_counter()
        baselines = {name.strip() for name in args.baselines.split(",")}
        a, b, _, twin = generate(
            work,
            args.variants,
            args.samples,
            args.seed,
            args.threads,
            twin="merge" in baselines,
        )
        generated = time.perf_counter() - started
        sizes = {path.name: path.stat().st_size / 1e6 for path in (a, b)}
        ours = measured([sys.executable, __file__, "--run-analysis", str(work)])
        rows = [("analyse (comparison + merge)", ours[0], ours[1])]
        if "isec" in baselines:
            isec = measured([BCFTOOLS, "isec", "-n=2", str(a), str(b)])
            rows.append(("bcftools isec -n=2", isec[0], isec[1]))
        if "merge" in baselines:
            merged = work / "bcftools-merged.vcf.gz"
            command = [BCFTOOLS, "merge", "--force-samples", "-Oz", "-o", str(merged), str(a)]
            merge = measured([*command, str(twin)])
            rows.append(("bcftools merge --force-samples -Oz", merge[0], merge[1]))
        print(
            f"\n{args.variants:,} variants x {args.samples} samples per child; generated in "
            f"{generated:.1f} s; a {sizes[a.name]:.1f} MB, b {sizes[b.name]:.1f} MB (bgzipped)"
        )
        print(f"{'step':<40}{'seconds':>9}{'peak RSS MB':>13}")
        for name, seconds, rss in rows:
            print(f"{name:<40}{seconds:9.2f}{rss:13d}")
        print(f"analyse found: {ours[2].strip()}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"files kept in {work}")


if __name__ == "__main__":
    main()
