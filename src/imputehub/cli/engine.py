"""`imputehub engine run|score`: the local engine's pipeline on files, with no hub around it,
and how well imputed dosages agree with the truth.

This is what the shipped CWL workflow (`imputehub/workflows/impute.cwl`) runs, so a WES
server with this package installed can impute the way the hub's own engine does. Result
files are written straight into `--out`; errors are one `error: ...` line and exit 1.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal, cast

import typer

from imputehub.cli.errors import CliError

app = typer.Typer(help="Run the local imputation engine on files.", no_args_is_help=True)

MODES = ("imputation", "qc_only")


@app.command("run")
def run(
    inputs: Annotated[
        list[Path], typer.Argument(help="Input VCFs (bgzipped, sorted).", exists=True)
    ],
    panel: Annotated[
        Path, typer.Option("--panel", help="Phased, indexed reference panel.", exists=True)
    ],
    out: Annotated[Path, typer.Option("--out", help="Directory for the result files.")],
    mode: Annotated[str, typer.Option("--mode", help="imputation or qc_only.")] = "imputation",
    r2_filter: Annotated[
        float | None, typer.Option("--r2-filter", help="Drop imputed sites below this R².")
    ] = None,
    heap_mb: Annotated[int, typer.Option("--heap-mb", help="Java heap for Beagle.")] = 1024,
    threads: Annotated[int, typer.Option("--threads", help="Beagle threads.")] = 1,
) -> None:
    """Impute (or only check) INPUTS against PANEL; the results go to OUT."""
    # Imported here: the engine pulls in heavier modules that other commands do not need.
    from imputehub.domain.errors import ImputehubError
    from imputehub.engine.pipeline import run_pipeline

    if mode not in MODES:
        raise CliError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    # The pipeline works in a directory of its own; only its results are moved into OUT.
    with tempfile.TemporaryDirectory(prefix=".imputehub-engine-", dir=out) as work:

        def report(step: str, percent: float) -> None:
            typer.echo(f"{step}: {percent:.0f}%")

        try:
            result = run_pipeline(
                [path.resolve() for path in inputs],
                panel.resolve(),
                Path(work),
                mode=cast(Literal["imputation", "qc_only"], mode),
                heap_mb=heap_mb,
                threads=threads,
                r2_filter=r2_filter,
                on_progress=report,
            )
        except ImputehubError as exc:
            raise CliError(exc.message) from exc
        for name in result.files:
            target = out / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(result.results_dir / name), str(target))
            typer.echo(f"wrote {target}")


@app.command("score")
def score(
    imputed: Annotated[
        Path, typer.Argument(help="Imputed VCF with DS dosages, e.g. chr20.dose.vcf.gz.")
    ],
    truth: Annotated[Path, typer.Argument(help="VCF of the true genotypes (GT).")],
    min_maf: Annotated[
        float,
        typer.Option("--min-maf", min=0.0, max=0.5, help="Score sites with a true MAF ≥ this."),
    ] = 0.05,
    json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Pooled dosage r² of IMPUTED against TRUTH (sites and samples the two share)."""
    from imputehub.engine import accuracy

    for path in (imputed, truth):
        if not path.is_file():
            raise CliError(f"{path}: no such file")
    try:
        result = accuracy.score(imputed, truth, min_maf=min_maf)
    except (ValueError, OSError, EOFError) as exc:  # gzip errors are OSError / EOFError
        raise CliError(f"cannot score {imputed} against {truth}: {exc}") from exc
    if json:
        from imputehub.cli.output import print_json

        print_json(dataclasses.asdict(result))
        return
    typer.echo(
        f"dosage r² {result.r2:.3f} over {result.sites} sites, {result.samples} samples "
        f"(true MAF ≥ {result.min_maf:g})"
    )
