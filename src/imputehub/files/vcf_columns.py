"""Counting a block of VCF records' columns at once: alleles, and the genotype columns.

The checker hands over the REF/ALT and FORMAT/sample columns of each block's records; the
counting here is done with C-level joins, maps and `bytes.count` passes over whole blocks,
so the cost per sample never runs through Python code.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from itertools import compress, repeat
from operator import add

from imputehub.domain import vcf

_BASE_LETTERS = b"ACGTNacgtn"
_ALT_LETTERS = _BASE_LETTERS + b","  # several ALT alleles
_NOT_TWO = re.compile(rb"[^\x02]")
_SUBFIELDS = re.compile(rb":[^\t]*")
# FORMAT value types that can never hold '|' or '/': genotype columns with only these
# besides GT are counted as they are, without cutting the other subfields away first.
_NUMERIC_TYPES = frozenset({b"Integer", b"Float"})
MAX_FORMATS = 1000

# How a record's FORMAT lets its genotypes be read.
_NO_GT = 0  # no GT first: no genotypes
_GT_ONLY = 1  # FORMAT is GT alone
_RAW = 2  # GT and numeric subfields: count separators in the columns as they are
_STRIP = 3  # GT and other text subfields: cut those off first


class AlleleCounts:
    """SNPs, indels, other sites and multi-allelic sites (one kind per site)."""

    def __init__(self) -> None:
        self.snps = 0
        self.indels = 0
        self.other = 0
        self.multiallelic = 0

    def add(self, refs: Sequence[bytes], alts: Sequence[bytes]) -> None:
        """Count a block's sites. Those whose REF and ALT are one base each (most of them)
        are counted by joins and maps; only the others are looked at one by one."""
        count = len(refs)
        every_ref = b"".join(refs)
        every_alt = b"".join(alts)
        odd: Sequence[int]
        if every_ref.translate(None, _BASE_LETTERS) or every_alt.translate(None, _ALT_LETTERS):
            odd = range(count)  # '.', '*', <DEL>...: rare, one by one
        elif len(every_ref) == count and len(every_alt) == count:
            odd = ()
        else:
            try:
                # REF and ALT lengths side by side: a one-base pair adds up to 2.
                lengths = bytes(map(add, map(len, refs), map(len, alts)))
            except ValueError:  # alleles of 255 letters and more
                odd = range(count)
            else:
                odd = [match.start() for match in _NOT_TWO.finditer(lengths)]
        self.snps += count - len(odd)
        for index in odd:
            alleles = alts[index].split(b",")
            if len(alleles) > 1:
                self.multiallelic += 1
            kind = vcf.variant_kind(refs[index], alleles)
            if kind == "snp":
                self.snps += 1
            elif kind == "indel":
                self.indels += 1
            else:
                self.other += 1


class GenotypeCounts:
    """Phased, unphased and missing calls in the GT of every sample column."""

    def __init__(self, samples: int, format_types: dict[bytes, bytes]) -> None:
        self.samples = samples
        self.records = 0  # records whose genotypes were counted
        self.no_gt = 0  # records without GT
        self.phased = 0  # calls with '|'
        self.unphased = 0  # calls with '/' (missing ones left out)
        self.missing = 0  # calls with a missing allele
        self._format_types = format_types  # FORMAT key -> its header Type
        self._kinds: dict[bytes, int] = {b"GT": _GT_ONLY}

    def add(self, formats: Sequence[bytes], tails: Sequence[bytes]) -> list[int]:
        """Count a block's records (FORMAT and the sample columns after it).

        Returns the indexes of records with the wrong number of sample columns: those are
        left out, and the caller says which lines they were.
        """
        tabs = list(map(bytes.count, tails, repeat(b"\t")))
        expected = self.samples - 1
        wrong: list[int] = []
        if tabs.count(expected) != len(tabs):
            wrong = [index for index, count in enumerate(tabs) if count != expected]
            right = [count == expected for count in tabs]
            formats = list(compress(formats, right))
            tails = list(compress(tails, right))
        if formats.count(b"GT") == len(formats):
            self._count(b"\t".join(tails), b"")
            self.records += len(tails)
            return wrong
        plain: list[bytes] = []
        raw: list[bytes] = []
        strip_subfields = _SUBFIELDS.sub
        for fmt, tail in zip(formats, tails, strict=True):
            how = self._kinds.get(fmt)
            if how is None:
                how = self._kind(fmt)
            if how == _GT_ONLY:
                plain.append(tail)
            elif how == _RAW:
                raw.append(tail)
            elif how == _STRIP:
                plain.append(strip_subfields(b"", tail))
            else:
                self.no_gt += 1
        self._count(b"\t".join(plain), b"\t".join(raw))
        self.records += len(plain) + len(raw)
        return wrong

    def _kind(self, fmt: bytes) -> int:
        keys = fmt.split(b":")
        if keys[0] != b"GT":
            how = _NO_GT
        elif all(self._format_types.get(key) in _NUMERIC_TYPES for key in keys[1:]):
            how = _RAW
        else:
            how = _STRIP
        if len(self._kinds) < MAX_FORMATS:
            self._kinds[fmt] = how
        return how

    def _count(self, gt_only: bytes, with_numbers: bytes) -> None:
        """A few passes of `bytes.count` over a block's columns, joined: `gt_only` columns
        hold GT alone; `with_numbers` ones GT and numeric subfields, which never hold '|'
        or '/'."""
        self.phased += gt_only.count(b"|") + with_numbers.count(b"|")
        self.unphased += gt_only.count(b"/") + with_numbers.count(b"/")
        # '.' alleles: in GT-only columns every dot is one; a call with two ('./.', '.|.')
        # is still one missing call. Numbers have dots of their own, so next to them only
        # wholly missing calls are counted.
        dots = gt_only.count(b".")
        if dots:
            empty = gt_only.count(b"./.")
            self.unphased -= empty  # a missing call is no sign of unphased data
            self.missing += dots - empty - gt_only.count(b".|.")
        if with_numbers:
            empty = with_numbers.count(b"./.")
            self.unphased -= empty
            self.missing += empty + with_numbers.count(b".|.")

    @property
    def phased_share(self) -> float | None:
        calls = self.phased + self.unphased
        return round(self.phased / calls, 6) if calls else None

    @property
    def missing_share(self) -> float | None:
        calls = self.records * self.samples
        return round(self.missing / calls, 6) if calls else None
