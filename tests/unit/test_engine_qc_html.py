"""The HTML QC report: what a user sees in the page, and that nothing in it is live markup."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from html.parser import HTMLParser
from pathlib import Path

import pytest

from imputehub.engine.outputs import InputSummary, SiteCounts
from imputehub.engine.qc_html import write_qc_report_html

HOSTILE_NAME = "<script>alert(1)</script>.vcf.gz"
HOSTILE_WARNING = 'sample "A&B" has <3 calls > half missing'
HOSTILE_PANEL = "1000G <b>phase 3</b> & more"
VOID = {"meta", "br", "hr", "img", "link", "input", "wbr", "col", "source"}


@dataclass
class Section:
    heading: str = ""
    rows: dict[str, list[str]] = field(default_factory=dict)  # row header -> its cells
    items: list[str] = field(default_factory=list)  # list items (warnings)


class Page(HTMLParser):
    """Checks nesting as it goes and gathers each section's heading, table rows and list items."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str | None]] = []
        self.sections: list[Section] = []
        self.title = ""
        self.text: list[str] = []
        self._buffer: list[str] | None = None
        self._row: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs
        if tag in VOID:
            return
        self.open.append(tag)
        if tag == "section":
            self.sections.append(Section())
        if tag in ("title", "h2", "th", "td", "li"):
            self._buffer = []
        if tag == "tr":
            self._row = []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += attrs

    def handle_endtag(self, tag: str) -> None:
        assert self.open, f"</{tag}> closes nothing"
        assert self.open[-1] == tag, f"</{tag}> closes <{self.open[-1]}>"
        self.open.pop()
        text = "".join(self._buffer or []).strip()
        if tag == "title":
            self.title = text
        elif tag == "h2":
            self.sections[-1].heading = text
        elif tag in ("th", "td"):
            self._row.append(text)
        elif tag == "tr" and self._row:
            self.sections[-1].rows[self._row[0]] = self._row[1:]
        elif tag == "li":
            self.sections[-1].items.append(text)
        if tag in ("title", "h2", "th", "td", "li"):
            self._buffer = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._buffer is not None:
            self._buffer.append(data)


def _summary(name: str) -> InputSummary:
    return InputSummary(
        name=name,
        samples=12,
        variants=23_456,
        chromosomes=("chr20", "chr21"),
        renamed={"chr20": "20", "chr21": "21"},
        sites=SiteCounts(exact=23_000, swapped=301, strand_flip=42, absent=110, multiallelic=3),
        warnings=(HOSTILE_WARNING, "42 sites look strand-flipped"),
    )


def _render(tmp_path: Path, panel: str, inputs: list[InputSummary]) -> tuple[str, Page]:
    path = tmp_path / "qc_report.html"
    write_qc_report_html(path, panel, inputs)
    raw = path.read_text(encoding="utf-8")
    page = Page()
    page.feed(raw)
    page.close()
    return raw, page


def test_hostile_names_warnings_and_panel_are_shown_as_text(tmp_path: Path) -> None:
    raw, page = _render(tmp_path, HOSTILE_PANEL, [_summary(HOSTILE_NAME)])

    # Nothing user-supplied became markup: no script, no <b>, the strings read back intact.
    assert "script" not in page.tags
    assert "b" not in page.tags
    assert "<script>" not in raw
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.vcf.gz" in raw
    assert "&lt;3 calls &gt;" in raw
    assert "&quot;A&amp;B&quot;" in raw
    assert page.sections[0].heading == f"Input file: {HOSTILE_NAME}"
    assert HOSTILE_WARNING in page.sections[0].items
    assert HOSTILE_PANEL in page.title
    assert f"Reference panel: {HOSTILE_PANEL}" in "".join(page.text)


@pytest.mark.parametrize("name", ['a"b.vcf.gz', "a'b.vcf.gz", "x&amp;y.vcf.gz"])
def test_quotes_and_entities_in_file_names_read_back_unchanged(tmp_path: Path, name: str) -> None:
    _, page = _render(tmp_path, "panel", [_summary(name)])
    assert page.sections[0].heading == f"Input file: {name}"


def test_the_numbers_are_in_their_rows_per_input_file(tmp_path: Path) -> None:
    second = replace(
        _summary("second.vcf.gz"),
        samples=7,
        variants=905,
        chromosomes=("22",),
        renamed={},
        sites=SiteCounts(exact=900, swapped=1, strand_flip=0, absent=4, multiallelic=0),
        warnings=(),
    )
    _, page = _render(tmp_path, "1000g-phase3", [_summary("first.vcf.gz"), second])

    first_section, second_section, explained = page.sections
    assert first_section.heading == "Input file: first.vcf.gz"
    assert first_section.rows["Samples"] == ["12"]
    assert first_section.rows["Variants"] == ["23,456"]
    assert first_section.rows["Chromosomes"] == ["chr20, chr21"]
    assert first_section.rows["Chromosomes renamed to the panel's naming"] == [
        "chr20 \N{RIGHTWARDS ARROW} 20, chr21 \N{RIGHTWARDS ARROW} 21"
    ]
    assert first_section.rows["Sites matching the panel"] == ["23,000", "passed to imputation"]
    excluded = "excluded, in statistics/snps-excluded.txt"
    assert first_section.rows["Allele switches"] == ["301", excluded]
    assert first_section.rows["Strand flips"] == ["42", excluded]
    assert first_section.rows["Multiallelic sites"] == ["3", excluded]
    assert first_section.rows["Typed-only sites, not in the panel"] == [
        "110",
        "excluded, in statistics/snps-typed-only.txt",
    ]
    assert first_section.items == [HOSTILE_WARNING, "42 sites look strand-flipped"]

    assert second_section.heading == "Input file: second.vcf.gz"
    assert second_section.rows["Samples"] == ["7"]
    assert second_section.rows["Variants"] == ["905"]
    assert second_section.rows["Chromosomes"] == ["22"]
    assert "Chromosomes renamed to the panel's naming" not in second_section.rows
    assert second_section.rows["Sites matching the panel"][0] == "900"
    assert second_section.rows["Allele switches"][0] == "1"
    assert second_section.rows["Typed-only sites, not in the panel"][0] == "4"
    assert second_section.items == []  # no warnings, no warnings list

    # Each excluded category is explained, with where its sites are listed.
    assert explained.heading == "What the excluded sites are"
    text = "".join(page.text)
    for category in ("Allele switches", "Strand flips", "Multiallelic sites", "Typed-only sites"):
        assert category in text.split(explained.heading, 1)[1]
    assert text.count("Listed in statistics/snps-excluded.txt.") == 3
    assert text.count("Listed in statistics/snps-typed-only.txt.") == 1


def test_the_page_is_well_formed_and_self_contained(tmp_path: Path) -> None:
    raw, page = _render(tmp_path, HOSTILE_PANEL, [_summary(HOSTILE_NAME), _summary("b.vcf.gz")])

    assert raw.startswith("<!DOCTYPE html>")
    assert page.open == []  # every opened tag was closed, in order (checked as parsed)
    assert page.tags.count("html") == page.tags.count("body") == 1
    assert "style" in page.tags
    # No scripts and nothing fetched from elsewhere: the page opens offline as it is.
    assert "script" not in page.tags
    assert not {"link", "img", "iframe", "object", "embed"} & set(page.tags)
    assert not [name for name, _ in page.attrs if name in ("src", "href") or name.startswith("on")]
    assert "url(" not in raw
    assert "@import" not in raw
