"""`python -m imputehub.federation SPEC OUTCOME`: the comparison and merge of a federated
job, in a process of its own.

The worker starts it (worker/parent_steps.py) so that hours of CPU-bound parsing never hold
the worker's event loop (leases, other jobs' steps) and a cancel can kill it whole. SPEC is
a JSON file: {"children": [{"key", "label", "files": [...]}, ...], "inputs": [...],
"out_dir", "bgzip", "tabix"}. OUTCOME receives {"files": [...], "notes": [...]} or
{"error": "..."} (a problem with the data: the user reads it); exit status 0 either way.
Anything else (a bug, no memory) exits non-zero with a traceback on stderr.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from imputehub.federation.analysis import AnalysisError, ChildDoses, analyse


def main(argv: list[str]) -> int:
    spec_path, outcome_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    children = [
        ChildDoses(
            key=child["key"],
            label=child["label"],
            files=tuple(Path(name) for name in child["files"]),
        )
        for child in spec["children"]
    ]
    try:
        analysis = analyse(
            children,
            [Path(name) for name in spec["inputs"]],
            Path(spec["out_dir"]),
            bgzip=spec["bgzip"],
            tabix=spec["tabix"],
        )
    except AnalysisError as exc:
        outcome: dict[str, object] = {"error": str(exc)}
    else:
        outcome = {
            "files": [str(path) for path in analysis.files],
            "notes": list(analysis.notes),
        }
    outcome_path.write_text(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
