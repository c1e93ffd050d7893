"""`qc_report.html`: the QC report of the local engine as one self-contained page.

The same facts as `qc_report.txt`, as a table per input file, plus what each excluded
category means and where its list is. The page carries its CSS inline and has no scripts
and no external resources, so it opens the same offline, from a download or an archive.
Every string that comes from the user or their files is escaped: a file name or a VCF
warning is data, never markup.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from html import escape
from pathlib import Path

from imputehub.engine.outputs import InputSummary

EXCLUDED_LIST = "statistics/snps-excluded.txt"
TYPED_ONLY_LIST = "statistics/snps-typed-only.txt"

_CSS = """
body { font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2328; background: #fff; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; }
h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1rem; margin-bottom: 0.3rem; }
.panel { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; min-width: 28rem; }
th, td { border: 1px solid #d0d7de; padding: 0.3rem 0.7rem; text-align: left;
  vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.count { text-align: right; font-variant-numeric: tabular-nums; }
tr.excluded td.count { color: #9a6700; }
code { font: 0.9em ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: #f6f8fa; padding: 0.1rem 0.3rem; border-radius: 4px; overflow-wrap: anywhere; }
ul.warnings { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px;
  padding: 0.5rem 0.5rem 0.5rem 2rem; }
dt { font-weight: 600; margin-top: 0.6rem; }
dd { margin-left: 1.5rem; }
"""

# (category, what it means, the list that names its sites)
_EXPLANATIONS = (
    (
        "Allele switches",
        "The panel has a site at this position with the same two alleles, but REF and ALT "
        "the other way round. Such sites are not passed to imputation.",
        EXCLUDED_LIST,
    ),
    (
        "Strand flips",
        "The alleles are the complements of the panel's (A\N{LEFT RIGHT ARROW}T, "
        "C\N{LEFT RIGHT ARROW}G), which usually means the genotypes were called on the "
        "opposite strand. Such sites are not passed to imputation; many of them suggest "
        "aligning the data to the forward strand.",
        EXCLUDED_LIST,
    ),
    (
        "Multiallelic sites",
        "Sites with more than one ALT allele. Imputation takes biallelic sites only; split "
        "them (e.g. bcftools norm -m-) if they matter.",
        EXCLUDED_LIST,
    ),
    (
        "Typed-only sites",
        "Sites of your data that the panel does not have at that position with those "
        "alleles. They cannot be imputed from the panel and are not passed to imputation. "
        "Many of them may mean a different genome build than the panel's.",
        TYPED_ONLY_LIST,
    ),
)


def write_qc_report_html(path: Path, panel_name: str, inputs: Sequence[InputSummary]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        out.writelines(render_qc_report_html(panel_name, inputs))


def render_qc_report_html(panel_name: str, inputs: Sequence[InputSummary]) -> Iterator[str]:
    """The page in pieces, one input file at a time."""
    panel = escape(panel_name)
    yield (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Quality Control \N{EN DASH} {panel}</title>\n"
        f"<style>{_CSS}</style>\n</head>\n<body>\n"
        "<h1>Quality Control</h1>\n"
        f'<p class="panel">Reference panel: <strong>{panel}</strong></p>\n'
    )
    for item in inputs:
        yield from _input_section(item)
    yield from _explanations()
    yield "</body>\n</html>\n"


def _input_section(item: InputSummary) -> Iterator[str]:
    sites = item.sites
    yield f"<section>\n<h2>Input file: <code>{escape(item.name)}</code></h2>\n"
    yield '<table class="input">\n<tbody>\n'
    yield _row("Samples", _count(item.samples))
    yield _row("Variants", _count(item.variants))
    yield _row("Chromosomes", escape(", ".join(item.chromosomes)), numeric=False)
    if item.renamed:
        pairs = ", ".join(f"{old} \N{RIGHTWARDS ARROW} {new}" for old, new in item.renamed.items())
        yield _row("Chromosomes renamed to the panel's naming", escape(pairs), numeric=False)
    yield "</tbody>\n</table>\n"
    yield "<h3>Sites compared with the panel</h3>\n"
    yield '<table class="sites">\n<thead>\n<tr><th scope="col">Sites</th>'
    yield '<th scope="col">Count</th><th scope="col">Outcome</th></tr>\n</thead>\n<tbody>\n'
    yield _site_row("Sites matching the panel", sites.exact, "passed to imputation")
    yield _site_row("Allele switches", sites.swapped, f"excluded, in {EXCLUDED_LIST}")
    yield _site_row("Strand flips", sites.strand_flip, f"excluded, in {EXCLUDED_LIST}")
    yield _site_row("Multiallelic sites", sites.multiallelic, f"excluded, in {EXCLUDED_LIST}")
    yield _site_row(
        "Typed-only sites, not in the panel", sites.absent, f"excluded, in {TYPED_ONLY_LIST}"
    )
    yield "</tbody>\n</table>\n"
    if item.warnings:
        yield '<h3>Warnings</h3>\n<ul class="warnings">\n'
        for warning in item.warnings:
            yield f"<li>{escape(warning)}</li>\n"
        yield "</ul>\n"
    yield "</section>\n"


def _explanations() -> Iterator[str]:
    yield "<section>\n<h2>What the excluded sites are</h2>\n<dl>\n"
    for label, meaning, listed_in in _EXPLANATIONS:
        yield f"<dt>{label}</dt>\n<dd>{escape(meaning)} Listed in <code>{listed_in}</code>.</dd>\n"
    yield "</dl>\n</section>\n"


def _row(label: str, value_html: str, *, numeric: bool = True) -> str:
    cell = '<td class="count">' if numeric else "<td>"
    return f'<tr><th scope="row">{label}</th>{cell}{value_html}</td></tr>\n'


def _site_row(label: str, count: int, outcome: str) -> str:
    css = "" if label.startswith("Sites matching") else ' class="excluded"'
    return (
        f'<tr{css}><th scope="row">{label}</th><td class="count">{_count(count)}</td>'
        f"<td>{outcome}</td></tr>\n"
    )


def _count(value: int) -> str:
    return f"{value:,}"
