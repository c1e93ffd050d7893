"""File names: what a client calls a file is only ever a display name.

Storage keys are made by the hub; a client's name never reaches a path. These helpers make
that name safe to show and to send back in a Content-Disposition header. No I/O.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

MAX_DISPLAY_NAME = 200
FALLBACK_NAME = "upload"
# Longest first: "x.vcf.gz" is a gzipped VCF, not a ".gz" of something else.
KNOWN_SUFFIXES = ("vcf.gz", "vcf", "bcf")
UNKNOWN_SUFFIX = "bin"

# Control, format (e.g. right-to-left overrides that disguise an extension), surrogate
# and line/paragraph separator characters: never useful in a name, sometimes harmful.
_DROPPED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_ASCII_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+-]")


def storage_suffix(name: str) -> str:
    """The extension the stored object gets: a known genomics suffix, else 'bin'."""
    lowered = name.lower()
    for suffix in KNOWN_SUFFIXES:
        if lowered.endswith("." + suffix) and len(lowered) > len(suffix) + 1:
            return suffix
    return UNKNOWN_SUFFIX


def display_name(raw: str | None) -> str:
    """A client's file name made safe to store and show.

    Drops any directory part (either slash), control and formatting characters and
    leading dots, collapses whitespace and caps the length, keeping a known suffix.
    """
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    name = unicodedata.normalize("NFC", " ".join(name.split()))
    name = name.lstrip(". ").rstrip(" ")
    if not name:
        return FALLBACK_NAME
    if len(name) <= MAX_DISPLAY_NAME:
        return name
    suffix = storage_suffix(name)
    if suffix == UNKNOWN_SUFFIX:
        return name[:MAX_DISPLAY_NAME].rstrip(" ")
    stem = name[: -(len(suffix) + 1)]
    return stem[: MAX_DISPLAY_NAME - len(suffix) - 1].rstrip(" ") + "." + suffix


def ascii_name(name: str) -> str:
    """An ASCII-only stand-in for clients that ignore RFC 6266's filename*."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    cleaned = _ASCII_UNSAFE.sub("_", plain).strip(" .")
    return cleaned or FALLBACK_NAME


def content_disposition(name: str) -> str:
    """`attachment` with a quoted ASCII name and the exact UTF-8 name (RFC 6266/8187)."""
    safe = display_name(name)
    return f"attachment; filename=\"{ascii_name(safe)}\"; filename*=UTF-8''{quote(safe, safe='')}"
