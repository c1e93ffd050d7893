"""The k-way walk over several children's dose records of one chromosome, by position.

Each child's records come sorted by position; the walk takes, at each position, every
child's records there and groups them into `Site`s: the same position and the same two
alleles, REF/ALT swapped counting as the same site. A site's REF/ALT are those of the first
child (in the given order) carrying it; `swapped[i]` says that child i has them the other
way round. Memory holds one position's records per child, whatever the file sizes.

A child with two records of the same site at one position (a duplicate) keeps its first;
the later ones are counted in `WalkCounts.duplicates` and otherwise ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from imputehub.federation.dose_records import DoseRecord


@dataclass(slots=True)
class Site:
    """One site and each child's record of it (None where a child lacks it)."""

    chrom: str
    pos: int
    ref: str
    alt: str
    records: list[DoseRecord | None]
    swapped: list[bool]


@dataclass
class WalkCounts:
    """What the walk dropped, per child."""

    duplicates: list[int] = field(default_factory=list)


def _alleles_key(ref: str, alt: str) -> tuple[str, str]:
    return (ref, alt) if ref <= alt else (alt, ref)


def walk_sites(
    sources: Sequence[Iterable[DoseRecord] | None], counts: WalkCounts | None = None
) -> Iterator[Site]:
    """Sites in position order from per-child record streams of one chromosome."""
    width = len(sources)
    if counts is not None and not counts.duplicates:
        counts.duplicates.extend([0] * width)
    streams: list[Iterator[DoseRecord] | None] = [
        iter(source) if source is not None else None for source in sources
    ]
    heads: list[DoseRecord | None] = [
        next(stream, None) if stream is not None else None for stream in streams
    ]
    while True:
        positions = [head.pos for head in heads if head is not None]
        if not positions:
            return
        pos = min(positions)
        sites: dict[tuple[str, str], Site] = {}
        for index in range(width):
            head = heads[index]
            stream = streams[index]
            while head is not None and head.pos == pos:
                key = _alleles_key(head.ref, head.alt)
                site = sites.get(key)
                if site is None:
                    site = Site(
                        chrom=head.chrom,
                        pos=pos,
                        ref=head.ref,
                        alt=head.alt,
                        records=[None] * width,
                        swapped=[False] * width,
                    )
                    sites[key] = site
                if site.records[index] is None:
                    site.records[index] = head
                    site.swapped[index] = head.ref != site.ref
                elif counts is not None:
                    counts.duplicates[index] += 1
                assert stream is not None
                head = next(stream, None)
            heads[index] = head
        yield from sites.values()
