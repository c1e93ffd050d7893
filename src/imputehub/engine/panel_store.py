"""Where the local engine keeps its reference panels: one directory per panel.

    <engine_dir>/panels/<panel_id>/panel.vcf.gz        phased, bgzipped panel
    <engine_dir>/panels/<panel_id>/panel.vcf.gz.tbi    (or .csi) its index
    <engine_dir>/panels/<panel_id>/panel.json          what `PanelMeta` holds

`panel.json` is written last (atomically), so a directory without it is an import that did
not finish and is never offered. The panel id is the directory name, and is what the hub's
reference panel records as the service's own panel id.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from imputehub.domain.errors import PermanentServiceError

PANELS_DIR = "panels"  # under the engine dir
PANEL_VCF = "panel.vcf.gz"
PANEL_META = "panel.json"
INDEX_SUFFIXES = (".tbi", ".csi")
PANEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class PanelNotFound(PermanentServiceError):
    code = "panel_not_found"


@dataclass(frozen=True, kw_only=True)
class PanelMeta:
    panel_id: str
    display_name: str
    build: str
    populations: tuple[str, ...] = ()
    sample_count: int = 0
    variant_count: int = 0
    contigs: tuple[str, ...] = ()  # as the panel writes them, e.g. ("chr20",) or ("20",)
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def chrom_style(self) -> str:
        return "chr" if any(c.lower().startswith("chr") for c in self.contigs) else "plain"

    def to_json(self) -> str:
        data = asdict(self)
        data["populations"] = list(self.populations)
        data["contigs"] = list(self.contigs)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PanelMeta:
        data = json.loads(text)
        return cls(
            panel_id=str(data["panel_id"]),
            display_name=str(data["display_name"]),
            build=str(data["build"]),
            populations=tuple(data.get("populations") or ()),
            sample_count=int(data.get("sample_count") or 0),
            variant_count=int(data.get("variant_count") or 0),
            contigs=tuple(data.get("contigs") or ()),
            description=str(data.get("description") or ""),
            extra=dict(data.get("extra") or {}),
        )


class PanelStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def in_engine_dir(cls, engine_dir: Path) -> PanelStore:
        """The store of the engine whose directory is `engine_dir` (`<engine_dir>/panels`)."""
        return cls(engine_dir / PANELS_DIR)

    def directory(self, panel_id: str) -> Path:
        if not PANEL_ID.match(panel_id):
            raise PanelNotFound(
                f"'{panel_id}' is not a valid local panel id "
                "(lower-case letters, digits, '.', '_' and '-')"
            )
        return self.root / panel_id

    def vcf(self, panel_id: str) -> Path:
        return self.directory(panel_id) / PANEL_VCF

    def is_offered(self, panel_id: str) -> bool:
        """Whether the panel was fully imported (its panel.json exists)."""
        return (self.directory(panel_id) / PANEL_META).is_file()

    def load(self, panel_id: str) -> PanelMeta:
        """The panel's description; PanelNotFound if it was never (fully) imported here."""
        meta = self.directory(panel_id) / PANEL_META
        try:
            text = meta.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PanelNotFound(
                f"the local engine has no reference panel '{panel_id}' in {self.root}; "
                "import it with `imputehub panels import`"
            ) from None
        return PanelMeta.from_json(text)

    def list(self) -> list[PanelMeta]:
        if not self.root.is_dir():
            return []
        found = []
        for child in sorted(self.root.iterdir()):
            if PANEL_ID.match(child.name) and (child / PANEL_META).is_file():
                found.append(self.load(child.name))
        return found

    def save_meta(self, meta: PanelMeta) -> None:
        """Write panel.json last and atomically: from then on the panel is offered."""
        directory = self.directory(meta.panel_id)
        tmp = directory / f".{PANEL_META}.{os.getpid()}"
        tmp.write_text(meta.to_json(), encoding="utf-8")
        os.replace(tmp, directory / PANEL_META)
