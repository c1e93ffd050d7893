"""The worker's steps for a federated job's parent: follow its children, then compare them.

`follow` brings the parent's status and progress up to date with its children's
(jobs/federated.follow) and looks again every IMPUTEHUB_PARENT_FOLLOW_SECONDS while any is
active. Once at least two have completed, `compare` brings their imputed dose VCFs and the
job's input files from storage into a temporary folder, runs the comparison and the merge
(federation/analysis.py) in a process of its own, stores what it wrote as the parent's
results, and completes the parent. A problem with the data (a result that is not a sorted
VCF) completes the parent without them and says why: the children's own results stand.
Storage trouble or a crash of the analysis retries the step with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from imputehub.db.models import Job, ReferencePanel, Service, StoredFile
from imputehub.domain.errors import PermanentServiceError, TransientServiceError
from imputehub.domain.jobs import JobStatus, Step
from imputehub.jobs import federated, lifecycle
from imputehub.notify import outbox
from imputehub.runtime import Runtime
from imputehub.worker import leases, outcomes
from imputehub.worker.leases import Claim, LeaseLost
from imputehub.worker.sink import StorageSink

logger = logging.getLogger("imputehub.worker")

DOSE_SUFFIX = ".dose.vcf.gz"
CHUNK_SIZE = 1024 * 1024
STEPS = frozenset({Step.FOLLOW.value, Step.COMPARE.value})


@dataclass(frozen=True, kw_only=True)
class _Source:
    key: str  # storage key
    name: str  # file name in the work folder


@dataclass(frozen=True, kw_only=True)
class _Child:
    key: str
    label: str
    files: tuple[_Source, ...]


@dataclass(frozen=True, kw_only=True)
class _Work:
    user_id: str
    children: tuple[_Child, ...]
    inputs: tuple[_Source, ...]


async def run(runtime: Runtime, claim: Claim) -> None:
    """Perform a parent's step; errors end up on the parent (raises only LeaseLost)."""
    try:
        if claim.step == Step.FOLLOW.value:
            await _follow(runtime, claim)
        else:
            await _compare(runtime, claim)
    except LeaseLost:
        raise
    except PermanentServiceError as exc:
        # No tools, or the results would pass the size limit or the quota: the children's
        # own results stand; the parent completes and says why it has none of its own.
        await _complete(runtime, claim, error=exc.message)
    except TransientServiceError as exc:
        await outcomes.retry_later(runtime, claim, exc.message, retry_after=exc.retry_after)
    except Exception:
        logger.exception(
            "a federated job's step failed with an unexpected error",
            extra={"action": "step_error", "job_id": claim.job_id, "step": claim.step},
        )
        await outcomes.retry_later(runtime, claim, outcomes.INTERNAL_ERROR, retry_after=None)


async def _follow(runtime: Runtime, claim: Claim) -> None:
    every = runtime.settings.parent_follow_seconds

    async def apply(session: AsyncSession, job: Job, now: datetime) -> None:
        await federated.follow(session, job, now=now, every_seconds=every)

    await outcomes.write(runtime, claim, apply)


async def _compare(runtime: Runtime, claim: Claim) -> None:
    work = await _work(runtime, claim)
    if work is None:
        return
    with tempfile.TemporaryDirectory(prefix="imputehub-compare-") as folder:
        root = Path(folder)
        children = []
        for child in work.children:
            paths = [await _bring(runtime, source, root / child.key) for source in child.files]
            children.append(
                {"key": child.key, "label": child.label, "files": [str(p) for p in paths]}
            )
        inputs = [await _bring(runtime, source, root / "inputs") for source in work.inputs]
        out_dir = root / "out"
        out_dir.mkdir()
        outcome = await _analyse(
            {
                "children": children,
                "inputs": [str(p) for p in inputs],
                "out_dir": str(out_dir),
                "bgzip": _tool("bgzip"),
                "tabix": _tool("tabix"),
            },
            root,
        )
        stored = 0
        if "error" not in outcome:
            sink = StorageSink(runtime, claim, user_id=work.user_id)
            for name in outcome["files"]:
                await sink.store(Path(name).name, _chunks(Path(name)))
                stored += 1
    error = str(outcome["error"]) if "error" in outcome else None
    notes = [str(note) for note in outcome.get("notes", [])]
    await _complete(runtime, claim, error=error, stored=stored, notes=notes)


async def _complete(
    runtime: Runtime,
    claim: Claim,
    *,
    error: str | None,
    stored: int = 0,
    notes: Sequence[str] = (),
) -> None:
    """Complete the parent: with its comparison, or saying why it has none."""

    async def apply(session: AsyncSession, job: Job, now: datetime) -> None:
        current = federated.current_children(await federated.children_of(session, job.id))
        summary = federated.summary(current)
        if error is None:
            message = f"{summary}; compared and merged"
        else:
            message = f"{summary}; the results could not be compared: {error}"
            lifecycle.record_error(job, error, now=now, transient=False)
        if notes:
            message += " (" + "; ".join(notes) + ")"
        lifecycle.follow_children(session, job, JobStatus.COMPLETED, now=now, message=message)
        if stored:
            outbox.results_ready(session, job, now=now, files=stored)

    await outcomes.write(runtime, claim, apply)
    logger.info(
        "federated job completed",
        extra={
            "action": "federated_job_compared",
            "job_id": claim.job_id,
            "files": stored,
            "compared": error is None,
        },
    )


async def _work(runtime: Runtime, claim: Claim) -> _Work | None:
    """What the comparison needs, read in one short transaction; None if not ours now."""
    async with runtime.db.session() as session:
        parent = await leases.lock_for_step(session, claim)
        if parent is None:
            return None
        current = federated.current_children(await federated.children_of(session, parent.id))
        completed = [child for child in current if child.status == JobStatus.COMPLETED.value]
        children = []
        for child in completed:
            files = await session.scalars(
                select(StoredFile)
                .where(StoredFile.job_id == child.id, StoredFile.kind == "result")
                .order_by(StoredFile.filename)
            )
            doses = tuple(
                _Source(key=f.storage_key, name=f.filename)
                for f in files
                if f.filename.endswith(DOSE_SUFFIX)
            )
            children.append(
                # Keyed by the target's place in the request: "t3" is the third target,
                # whichever others completed.
                _Child(
                    key=f"t{(child.target_index or 0) + 1}",
                    label=await _label(session, child),
                    files=doses,
                )
            )
        inputs = tuple(
            _Source(key=item.file.storage_key, name=f"{item.position}-{item.file.filename}")
            for item in parent.inputs
        )
        return _Work(
            user_id=parent.user_id,
            children=tuple(children),
            inputs=inputs,
        )


async def _label(session: AsyncSession, child: Job) -> str:
    service = await session.get(Service, child.service_id) if child.service_id else None
    panel = (
        await session.get(ReferencePanel, child.reference_panel_id)
        if child.reference_panel_id
        else None
    )
    parts = [service.name if service else "?", panel.display_name if panel else "?"]
    if child.population:
        parts.append(child.population)
    return " / ".join(parts)


async def _bring(runtime: Runtime, source: _Source, folder: Path) -> Path:
    """Copy one stored file into the work folder, in bounded chunks."""
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    path = folder / Path(source.name).name
    with path.open("wb") as out:
        async for chunk in runtime.storage.read(source.key):
            await asyncio.to_thread(out.write, chunk)
    return path


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as source:
        while chunk := await asyncio.to_thread(source.read, CHUNK_SIZE):
            yield chunk


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise PermanentServiceError(
            f"'{name}' is not installed on the worker's machine (Debian package 'tabix')"
        )
    return found


async def _analyse(spec: dict[str, object], root: Path) -> dict[str, list[str] | str]:
    """Run the analysis in a child process; kill it if this step is cancelled."""
    spec_path, outcome_path = root / "spec.json", root / "outcome.json"
    errors_path = root / "errors.txt"
    spec_path.write_text(json.dumps(spec))
    with errors_path.open("wb") as errors:  # a file, not a pipe: bounded memory here
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "imputehub.federation",
            str(spec_path),
            str(outcome_path),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=errors,
        )
        try:
            await process.wait()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
            raise
    if process.returncode != 0:
        with errors_path.open("rb") as errors:
            errors.seek(max(0, errors_path.stat().st_size - 4096))
            tail = errors.read().decode(errors="replace").strip().splitlines()[-5:]
        logger.error(
            "the comparison of a federated job crashed",
            extra={"action": "federated_compare_crashed", "stderr": "\n".join(tail)},
        )
        raise TransientServiceError(
            "the comparison of the results crashed (details are in the worker log); retrying"
        )
    outcome: dict[str, list[str] | str] = json.loads(outcome_path.read_text())
    return outcome
