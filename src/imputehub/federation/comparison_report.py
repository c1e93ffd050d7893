"""The comparison of a federated job's children, written for machines (TSV) and people (HTML).

`comparison.tsv` format (tab-separated, UTF-8):
- lines starting with `# ` are comments (the first says what the file is);
- a line `## <section>` starts a section: `summary`, `children`, `r2_by_maf`, `pairs`,
  `typed`; the next line is that section's column names, then one line per row;
- an empty field means "not available" (e.g. a correlation without dosages);
- numbers use '.' as decimal point; tabs and line breaks in labels become spaces.
`read_sections` parses it back.

`comparison.html` is one self-contained page: inline CSS, inline SVG charts, no script and
no outside address; every text (child labels come from admins and users) is HTML-escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from markupsafe import Markup

from imputehub.federation.comparison import MAF_BINS, Comparison
from imputehub.web.console.charts import PALETTE, bar_chart

TSV_NAME = "comparison.tsv"
HTML_NAME = "comparison.html"

SECTIONS: dict[str, tuple[str, ...]] = {
    "summary": ("name", "value"),
    "children": (
        "key",
        "label",
        "samples",
        "chromosomes",
        "variants",
        "typed_variants",
        "typed_without_r2",
        "imputed_without_r2",
        "unknown_maf",
        "duplicates",
        "r2_at_least_0.3",
        "r2_at_least_0.8",
    ),
    "r2_by_maf": ("key", "maf_bin", "maf_low", "maf_high", "sites", "r2_sites", "mean_r2"),
    "pairs": (
        "first",
        "second",
        "shared_sites",
        "swapped_sites",
        "dosage_values",
        "correlation",
    ),
    "typed": ("key", "matched_sites", "genotypes", "r2", "concordance"),
}

NOTES = (
    "Estimated r² is each service's own (INFO R2 or DR2); means per MAF bin leave out typed "
    "sites without an r².",
    "Counts with r² ≥ 0.3 / 0.8 count typed sites without an r² as 1.0 and imputed sites "
    "without one as 0.",
    "MAF comes from INFO MAF, else from AF, else from the mean dosage.",
    "Shared sites: same chromosome, position and alleles (REF/ALT swapped counts as the same; "
    "the dosage is then taken as 2 - DS). Dosage comparisons use the samples every child with "
    "samples has.",
    "Typed agreement compares each child's dosages with the genotypes of the uploaded file at "
    "its sites; concordance is the share of genotypes whose rounded dosage equals the allele "
    "count.",
)


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return format(value, ".6g")
    return " ".join(str(value).split()) if isinstance(value, str) else str(value)


def _rows(comparison: Comparison, notes: Sequence[str]) -> dict[str, list[tuple[object, ...]]]:
    summary: list[tuple[object, ...]] = [
        ("children", len(comparison.children)),
        ("chromosomes", ",".join(comparison.chromosomes)),
        ("common_samples", comparison.common_samples),
        ("typed_samples", comparison.typed_samples),
        ("input_sites", comparison.input_sites),
    ]
    summary += [("note", note) for note in notes]
    return {
        "summary": summary,
        "children": [
            (
                c.key,
                c.label,
                c.samples,
                ",".join(c.chromosomes),
                c.variants,
                c.typed_variants,
                c.typed_without_r2,
                c.imputed_without_r2,
                c.unknown_maf,
                c.duplicates,
                c.r2_at_least_0_3,
                c.r2_at_least_0_8,
            )
            for c in comparison.children
        ],
        "r2_by_maf": [
            (c.key, b.label, b.low, b.high, b.sites, b.r2_sites, b.mean_r2)
            for c in comparison.children
            for b in c.bins
        ],
        "pairs": [
            (
                p.first,
                p.second,
                p.shared_sites,
                p.swapped_sites,
                p.dosage_values,
                p.correlation,
            )
            for p in comparison.pairs
        ],
        "typed": [
            (t.key, t.matched_sites, t.genotypes, t.r2, t.concordance) for t in comparison.typed
        ],
    }


def write_tsv(path: Path, comparison: Comparison, notes: Sequence[str] = ()) -> Path:
    lines = [
        "# imputehub federated job comparison\n",
        "# sections start with '## <name>', then a line of column names; empty = n/a\n",
    ]
    for name, rows in _rows(comparison, notes).items():
        lines.append(f"## {name}\n")
        lines.append("\t".join(SECTIONS[name]) + "\n")
        lines += ["\t".join(_cell(value) for value in row) + "\n" for row in rows]
    path.write_text("".join(lines), encoding="utf-8")
    return path


def read_sections(path: Path) -> dict[str, list[dict[str, str]]]:
    """`comparison.tsv` back as section -> rows (column name -> text)."""
    sections: dict[str, list[dict[str, str]]] = {}
    name: str | None = None
    columns: list[str] | None = None
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            line = line.rstrip("\n")
            if line.startswith("## "):
                name, columns = line[3:], None
                sections[name] = []
            elif line.startswith("#") or name is None:
                continue
            elif columns is None:
                columns = line.split("\t")
            else:
                sections[name].append(dict(zip(columns, line.split("\t"), strict=True)))
    return sections


_CSS = """
body{font-family:system-ui,sans-serif;color:#1b1f24;margin:2rem auto;max-width:60rem;
padding:0 1rem;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0 1rem}
th,td{border:1px solid #d0d7de;padding:.25rem .5rem;text-align:right}
th:first-child,td:first-child{text-align:left}
td.label{text-align:left}caption{text-align:left;font-weight:600;padding:.25rem 0}
.notes li{margin:.2rem 0}svg{max-width:100%;height:auto}
"""


def _fmt(value: float | int | None, digits: int = 3) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f} %"


def _table(caption: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> Markup:
    cells = Markup("").join(Markup("<th scope='col'>{}</th>").format(h) for h in head)
    body = Markup("")
    for row in rows:
        body += Markup("<tr>{}</tr>").format(
            Markup("").join(Markup("<td>{}</td>").format(value) for value in row)
        )
    return Markup(
        "<table><caption>{}</caption><thead><tr>{}</tr></thead><tbody>{}</tbody></table>"
    ).format(caption, cells, body)


def grouped_bars(comparison: Comparison) -> Markup:
    """Mean estimated r² per MAF bin, one bar per child in each bin, a legend by name."""
    width, left, plot = 640, 44, 200
    top = 24 + 16 * len(comparison.children)
    bottom = top + plot
    groups = len(MAF_BINS)
    children = comparison.children
    group_width = (width - left - 16) / groups
    bar = max(4.0, (group_width - 16) / max(1, len(children)))
    body = Markup("")
    line = Markup('<line x1="{:.1f}" y1="{:.1f}" x2="{:.1f}" y2="{:.1f}" stroke="#d0d7de"/>')
    text = Markup(
        '<text x="{:.1f}" y="{:.1f}" text-anchor="{}" fill="#1b1f24" '
        'font-family="system-ui, sans-serif" font-size="12">{}</text>'
    )
    for tick in (0.0, 0.5, 1.0):
        y = bottom - tick * plot
        body += line.format(left, y, width - 16, y)
        body += text.format(left - 6, y + 4, "end", f"{tick:.1f}")
    for group, (label, _, _) in enumerate(MAF_BINS):
        x0 = left + group * group_width + 8
        body += text.format(x0 + (group_width - 16) / 2, bottom + 16, "middle", f"MAF {label}")
        for index, child in enumerate(children):
            mean = child.bins[group].mean_r2
            if mean is None:
                continue
            height = max(0.0, min(1.0, mean)) * plot
            body += Markup(
                '<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}">'
                "<title>{}: {}</title></rect>"
            ).format(
                x0 + index * bar,
                bottom - height,
                bar - 2,
                height,
                PALETTE[index % len(PALETTE)],
                f"{child.key} {label}",
                f"{mean:.3f}",
            )
    for index, child in enumerate(children):  # one legend line per child, above the plot
        y = 8 + 16 * index
        body += Markup('<rect x="{:.1f}" y="{}" width="12" height="12" fill="{}"/>').format(
            left, y, PALETTE[index % len(PALETTE)]
        )
        name = child.label if len(child.label) <= 60 else child.label[:59] + "\u2026"
        body += text.format(left + 16, y + 10, "start", f"{child.key}: {name}")
    height = bottom + 28
    return Markup(
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{}" '
        'viewBox="0 0 {} {}" width="{}" height="{}">{}</svg>'
    ).format("Mean estimated r² per MAF bin and child", width, height, width, height, body)


def render_html(comparison: Comparison, notes: Sequence[str] = ()) -> str:
    children = comparison.children
    labels = {c.key: c.label for c in children}
    parts: list[Markup] = [
        Markup("<h1>Federated job: comparison of {} results</h1>").format(len(children)),
        Markup(
            "<p>Samples common to every result with samples: {}. Typed sites in the upload: {}.</p>"
        ).format(_fmt(comparison.common_samples), _fmt(comparison.input_sites)),
    ]
    if notes:
        parts.append(
            Markup("<h2>Notes</h2><ul class='notes'>{}</ul>").format(
                Markup("").join(Markup("<li>{}</li>").format(note) for note in notes)
            )
        )
    parts.append(Markup("<h2>Results</h2>"))
    parts.append(
        _table(
            "Each result",
            (
                "Key",
                "Service / panel",
                "Samples",
                "Chromosomes",
                "Variants",
                "Typed",
                "r² ≥ 0.3",
                "r² ≥ 0.8",
            ),
            [
                (
                    c.key,
                    c.label,
                    _fmt(c.samples),
                    ", ".join(c.chromosomes) or "none",
                    _fmt(c.variants),
                    _fmt(c.typed_variants),
                    _fmt(c.r2_at_least_0_3),
                    _fmt(c.r2_at_least_0_8),
                )
                for c in children
            ],
        )
    )
    parts.append(Markup("<h2>Estimated r² by minor allele frequency</h2>"))
    parts.append(grouped_bars(comparison))
    parts.append(
        _table(
            "Mean estimated r² (sites with an r² / all sites in the bin)",
            ("Key", *(f"MAF {label}" for label, _, _ in MAF_BINS)),
            [
                (
                    c.key,
                    *(f"{_fmt(b.mean_r2)} ({_fmt(b.r2_sites)} / {_fmt(b.sites)})" for b in c.bins),
                )
                for c in children
            ],
        )
    )
    bars = [
        (f"{c.key}", c.r2_at_least_0_8 / c.variants * 100 if c.variants else 0.0) for c in children
    ]
    parts.append(bar_chart(bars, title="Share of sites with r² ≥ 0.8", unit=" %", max_value=100.0))
    parts.append(Markup("<h2>Pairs of results</h2>"))
    parts.append(
        _table(
            "Shared sites and dosage correlation",
            (
                "First",
                "Second",
                "Shared sites",
                "Of which REF/ALT swapped",
                "Dosage values",
                "Pearson r",
            ),
            [
                (
                    f"{p.first}: {labels.get(p.first, '')}",
                    f"{p.second}: {labels.get(p.second, '')}",
                    _fmt(p.shared_sites),
                    _fmt(p.swapped_sites),
                    _fmt(p.dosage_values),
                    _fmt(p.correlation),
                )
                for p in comparison.pairs
            ],
        )
    )
    parts.append(Markup("<h2>Agreement with the uploaded genotypes (typed sites)</h2>"))
    parts.append(
        _table(
            "Dosages against the uploaded genotypes",
            ("Key", "Matched sites", "Genotypes", "Pearson r²", "Concordance"),
            [
                (
                    t.key,
                    _fmt(t.matched_sites),
                    _fmt(t.genotypes),
                    _fmt(t.r2),
                    _percent(t.concordance),
                )
                for t in comparison.typed
            ],
        )
    )
    parts.append(
        Markup("<h2>How these numbers are made</h2><ul class='notes'>{}</ul>").format(
            Markup("").join(Markup("<li>{}</li>").format(note) for note in NOTES)
        )
    )
    page = Markup(
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Federated job comparison</title><style>{}</style></head><body>{}</body></html>"
    ).format(_CSS, Markup("\n").join(parts))
    return str(page)


def write_html(path: Path, comparison: Comparison, notes: Sequence[str] = ()) -> Path:
    path.write_text(render_html(comparison, notes), encoding="utf-8")
    return path
