"""The local engine's pipeline: validate, QC against the panel, Beagle per chromosome, results.

`run_pipeline` is synchronous and meant to run in a process of its own; it reports step
names and progress through `on_progress` and stops when `cancel_event` is set. Beagle runs
in its own process group, so cancelling kills it (and anything it started) as a whole.
Files are streamed throughout; nothing reads a whole VCF into memory.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from imputehub.engine.outputs import (
    EXCLUDED_HEADER,
    TYPED_ONLY_HEADER,
    InputSummary,
    SiteCounts,
    filter_target,
    write_dose_and_info,
    write_qc_report,
)
from imputehub.engine.qc_html import write_qc_report_html
from imputehub.engine.tools import (
    BeagleProgress,
    CancelSignal,
    PipelineCancelled,
    PipelineError,
    Tools,
    beagle_windows,
    check_tools,
    run_beagle,
)
from imputehub.files.vcf_check import check_path
from imputehub.files.vcf_report import VcfReport

Mode = Literal["imputation", "qc_only"]
ChromStyle = Literal["chr", "plain"]
ProgressCallback = Callable[[str, float], None]

VALIDATION = "Input Validation"
QUALITY_CONTROL = "Quality Control"
IMPUTATION = "Phasing and Imputation"
SUMMARY = "Summary"


@dataclass(frozen=True, kw_only=True)
class PipelineResult:
    results_dir: Path
    files: tuple[str, ...]  # relative to results_dir, sorted
    chromosomes: tuple[str, ...]  # in the panel's naming
    mode: Mode


@dataclass
class _Target:
    """One input file, through QC: the chromosomes it holds and its filtered copy."""

    source: Path
    chromosomes: list[str] = field(default_factory=list)  # panel naming
    filtered: Path | None = None
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)


def to_style(chrom: str, style: ChromStyle) -> str:
    bare = chrom[3:] if chrom.lower().startswith("chr") else chrom
    return f"chr{bare}" if style == "chr" else bare


def output_name(chrom: str) -> str:
    """Michigan's file stem: `chr20` whatever the naming inside the file."""
    return to_style(chrom, "chr")


def run_pipeline(
    inputs: list[Path],
    panel: Path,
    work_dir: Path,
    *,
    mode: Mode = "imputation",
    heap_mb: int = 1024,
    threads: int = 1,
    on_progress: ProgressCallback | None = None,
    panel_chrom_style: ChromStyle | None = None,
    panel_name: str | None = None,
    tools: Tools | None = None,
    cancel_event: CancelSignal | None = None,
    kill_grace: float = 5.0,
    on_beagle_start: Callable[[int], None] | None = None,
    r2_filter: float | None = None,
) -> PipelineResult:
    """Impute sorted VCFs against a phased, indexed panel; results go to work_dir/results."""
    if tools is None:
        check = check_tools()
        if check.tools is None:
            raise PipelineError(check.message)
        tools = check.tools
    run = _Run(
        tools=tools,
        panel=panel,
        work_dir=work_dir,
        report=on_progress or (lambda step, percent: None),
        cancel=cancel_event,
        kill_grace=kill_grace,
        on_beagle_start=on_beagle_start,
        r2_filter=r2_filter,
    )
    try:
        return run.execute(inputs, mode, heap_mb, threads, panel_chrom_style, panel_name)
    except BaseException:
        shutil.rmtree(run.results, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(run.tmp, ignore_errors=True)


class _Run:
    def __init__(
        self,
        *,
        tools: Tools,
        panel: Path,
        work_dir: Path,
        report: ProgressCallback,
        cancel: CancelSignal | None,
        kill_grace: float,
        on_beagle_start: Callable[[int], None] | None = None,
        r2_filter: float | None = None,
    ) -> None:
        self.tools = tools
        self.panel = panel
        self.results = work_dir / "results"
        self.tmp = work_dir / "tmp"
        self.report = report
        self.cancel = cancel
        self.kill_grace = kill_grace
        self.on_beagle_start = on_beagle_start
        self.r2_filter = r2_filter

    def execute(
        self,
        inputs: list[Path],
        mode: Mode,
        heap_mb: int,
        threads: int,
        style: ChromStyle | None,
        panel_name: str | None,
    ) -> PipelineResult:
        # A rerun (e.g. after a worker died mid-run) starts from nothing, never from leftovers.
        for leftover in (self.results, self.tmp):
            shutil.rmtree(leftover, ignore_errors=True)
        (self.results / "statistics").mkdir(parents=True)
        self.tmp.mkdir(parents=True)
        self._step(VALIDATION)
        reports = [self._validate(path) for path in inputs]
        self._step(QUALITY_CONTROL)
        contigs = self._panel_contigs()
        if style is None:
            style = "chr" if any(c.lower().startswith("chr") for c in contigs) else "plain"
        targets = self._quality_control(inputs, reports, contigs, style, panel_name)
        chromosomes = [c for target in targets for c in target.chromosomes]
        if mode == "qc_only":
            return self._result(chromosomes, mode)
        self._step(IMPUTATION)
        beagle_outputs = self._impute(targets, heap_mb, threads)
        self._step(SUMMARY)
        self._summarise(beagle_outputs)
        self.report(SUMMARY, 100.0)
        return self._result(chromosomes, mode)

    # --- helpers -------------------------------------------------------------------------------

    def _step(self, name: str) -> None:
        self._check_cancel()
        self.report(name, 0.0)

    def _check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise PipelineCancelled("the run was cancelled")

    def _result(self, chromosomes: list[str], mode: Mode) -> PipelineResult:
        files = sorted(
            str(path.relative_to(self.results))
            for path in self.results.rglob("*")
            if path.is_file()
        )
        return PipelineResult(
            results_dir=self.results, files=tuple(files), chromosomes=tuple(chromosomes), mode=mode
        )

    def _tool(self, args: list[str], what: str) -> str:
        self._check_cancel()
        done = subprocess.run(args, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            detail = done.stderr.strip().splitlines()[-1:] or ["no message"]
            raise PipelineError(f"{what} failed: {detail[0]}")
        return done.stdout

    # --- Input Validation --------------------------------------------------------------------

    def _validate(self, path: Path) -> VcfReport:
        report = check_path(path)
        if not report.sorted:
            raise PipelineError(
                f"{path.name}: the records are not sorted by position; "
                "sort the file first (bcftools sort)"
            )
        errors = [p.message for p in report.errors]
        if report.fatal or errors:
            raise PipelineError(f"{path.name}: {'; '.join(errors)}")
        if report.samples == 0:
            raise PipelineError(f"{path.name}: the file has no samples to impute")
        return report

    # --- Quality Control ---------------------------------------------------------------------

    def _panel_contigs(self) -> list[str]:
        out = self._tool([self.tools.tabix, "-l", str(self.panel)], "reading the panel's index")
        return out.split()

    def _panel_sites(self, chrom: str) -> Iterator[tuple[int, str, str]]:
        args = [self.tools.bcftools, "query", "-r", chrom, "-f", r"%POS\t%REF\t%ALT\n"]
        with subprocess.Popen(  # noqa: S603
            [*args, str(self.panel)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        ) as proc:
            assert proc.stdout is not None
            try:
                for line in proc.stdout:
                    pos, ref, alt = line.rstrip("\n").split("\t")
                    yield int(pos), ref, alt
            finally:
                proc.kill()

    def _quality_control(
        self,
        inputs: list[Path],
        reports: list[VcfReport],
        contigs: list[str],
        style: ChromStyle,
        panel_name: str | None,
    ) -> list[_Target]:
        seen: dict[str, str] = {}
        summaries: list[InputSummary] = []
        targets: list[_Target] = []
        stats = self.results / "statistics"
        with (
            open(stats / "snps-excluded.txt", "w", encoding="utf-8") as excluded,
            open(stats / "snps-typed-only.txt", "w", encoding="utf-8") as typed_only,
        ):
            excluded.write(EXCLUDED_HEADER)
            typed_only.write(TYPED_ONLY_HEADER)
            for index, (path, report) in enumerate(zip(inputs, reports, strict=True)):
                chroms = report.chromosomes
                renamed = {c: to_style(c, style) for c in chroms if to_style(c, style) != c}
                target = _Target(source=path)
                for chrom in chroms:
                    name = to_style(chrom, style)
                    if name not in contigs:
                        raise PipelineError(
                            f"{path.name}: chromosome '{chrom}' is not in the reference panel "
                            f"(panel chromosomes: {', '.join(contigs[:30])})"
                        )
                    if name in seen:
                        raise PipelineError(
                            f"chromosome '{chrom}' appears in both {seen[name]} and {path.name}; "
                            "give each chromosome in one file only"
                        )
                    seen[name] = path.name
                    target.chromosomes.append(name)
                source = path
                if renamed:
                    source = self._rename(path, renamed, index)
                target.filtered = self.tmp / f"target{index}.vcf.gz"
                counts = self._filter(source, target.filtered, excluded, typed_only)
                for name in target.chromosomes:
                    if not counts.per_chromosome.get(name):
                        raise PipelineError(
                            f"{path.name}: no typed site on chromosome '{name}' matches the "
                            "panel by position and alleles; check the genome build and strand"
                        )
                target.spans = dict(counts.spans)
                warnings = [problem.message for problem in report.warnings]
                if counts.strand_flip:
                    warnings.append(f"{counts.strand_flip} sites look strand-flipped")
                summaries.append(
                    InputSummary(
                        name=path.name,
                        samples=report.samples,
                        variants=counts.total,
                        chromosomes=tuple(chroms),
                        renamed=renamed,
                        sites=counts,
                        warnings=tuple(warnings),
                    )
                )
                targets.append(target)
        write_qc_report(self.results / "qc_report.txt", panel_name or self.panel.name, summaries)
        write_qc_report_html(
            self.results / "qc_report.html", panel_name or self.panel.name, summaries
        )
        self.report(QUALITY_CONTROL, 100.0)
        return targets

    def _rename(self, path: Path, renamed: dict[str, str], index: int) -> Path:
        mapping = self.tmp / f"rename{index}.txt"
        mapping.write_text("".join(f"{old}\t{new}\n" for old, new in renamed.items()))
        out = self.tmp / f"renamed{index}.vcf.gz"
        args = [self.tools.bcftools, "annotate", "--rename-chrs", str(mapping)]
        self._tool([*args, "-Oz", "-o", str(out), str(path)], "renaming chromosomes")
        return out

    def _filter(
        self, source: Path, out: Path, excluded: IO[str], typed_only: IO[str]
    ) -> SiteCounts:
        with (
            open(out, "wb") as sink,
            subprocess.Popen(  # noqa: S603
                [self.tools.bgzip, "-c"], stdin=subprocess.PIPE, stdout=sink
            ) as zipper,
        ):
            assert zipper.stdin is not None
            try:
                counts = filter_target(
                    source, self._panel_sites, zipper.stdin, excluded, typed_only
                )
            finally:
                zipper.stdin.close()
        if zipper.returncode != 0:
            raise PipelineError("compressing the filtered target failed")
        return counts

    # --- Phasing and Imputation --------------------------------------------------------------

    def _impute(self, targets: list[_Target], heap_mb: int, threads: int) -> list[tuple[str, Path]]:
        runs = [(t, chrom) for t in targets for chrom in t.chromosomes]
        outputs: list[tuple[str, Path]] = []
        for number, (target, chrom) in enumerate(runs):
            assert target.filtered is not None
            first, last = target.spans.get(chrom, (0, 0))
            progress = BeagleProgress(beagle_windows(last - first))
            prefix = self.tmp / f"beagle_{output_name(chrom)}"
            args = [
                self.tools.java,
                f"-Xmx{heap_mb}m",
                "-jar",
                str(self.tools.beagle_jar),
                f"gt={target.filtered}",
                f"ref={self.panel}",
                f"out={prefix}",
                f"chrom={chrom}",
                f"nthreads={threads}",
                "gp=true",
            ]

            def on_line(
                line: str, number: int = number, progress: BeagleProgress = progress
            ) -> None:
                fraction = progress.feed(line)
                if fraction is not None:
                    self.report(IMPUTATION, 100.0 * (number + fraction) / len(runs))

            run_beagle(
                args,
                cwd=self.tmp,
                chrom=chrom,
                on_line=on_line,
                cancel=self.cancel,
                kill_grace=self.kill_grace,
                on_start=self.on_beagle_start,
            )
            outputs.append((chrom, prefix.with_name(prefix.name + ".vcf.gz")))
            self.report(IMPUTATION, 100.0 * (number + 1) / len(runs))
        return outputs

    # --- Summary -----------------------------------------------------------------------------

    def _summarise(self, outputs: list[tuple[str, Path]]) -> None:
        contigs = self._contig_lines()
        for chrom, beagle_vcf in outputs:
            self._check_cancel()
            stem = output_name(chrom)
            dose = self.results / f"{stem}.dose.vcf.gz"
            line = contigs.get(chrom, f"##contig=<ID={chrom}>\n")
            write_dose_and_info(
                beagle_vcf,
                [line],
                dose,
                self.results / f"{stem}.info.gz",
                bgzip=self.tools.bgzip,
                min_r2=self.r2_filter,
            )
            self._tool([self.tools.tabix, "-f", "-p", "vcf", str(dose)], "indexing results")

    def _contig_lines(self) -> dict[str, str]:
        """The panel's `##contig` lines by ID, read from its header as a stream."""
        lines: dict[str, str] = {}
        args = [self.tools.bcftools, "view", "-h", str(self.panel)]
        with subprocess.Popen(args, stdout=subprocess.PIPE, text=True) as proc:  # noqa: S603
            assert proc.stdout is not None
            for line in proc.stdout:
                if line.startswith("##contig=<"):
                    match = re.search(r"[<,]ID=([^,>]+)", line)
                    if match:
                        lines[match.group(1)] = line
        return lines
