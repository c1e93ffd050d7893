"""A faithful local stand-in for a Michigan Imputation Server (Cloudgene 3, API v2).

Served over real HTTP on loopback (Starlette + uvicorn in a thread) and following
../shared/reference/michigan-api.md to the letter, quirks included:
- `X-Auth-Token` on everything under /api/ (unknown or expired token: 401) except what
  Cloudgene 3 serves anonymously: /api/v2/server (the `user` only with a valid token),
  /api/v2/server/apps/{id}, /api/v2/server/counters and /api/v2/tokens/verify;
- the app's params as Cloudgene 3 lists them: `list` params (`build`, `r2Filter`, `phasing`,
  `mode`) with `values` as `{"key", "value"}` sorted by key, and `population` as a
  `binded_list` whose `values` is a list with one entry per panel (`like_topmed()` drops
  beagle from the phasing methods and allows 3 jobs per user);
- submit is multipart; an unknown field answers 400 `Parameter 'x' not found.`; checkboxes
  (`aesEncryption`, `meta`) are on only when sent as `true`; values are not validated;
- the whole multipart body is read before anything is checked, then: maintenance (503,
  while /api/v2/server says `"maintenace": true`) and at most `job_limit` (2)
  waiting/running/exporting jobs per user, else 400 `Only N jobs...`;
- job lists are page objects, newest first; each status call moves a job one step on
  (waiting -> running -> exporting -> success, or failed with step messages);
- results: `chr_20.zip` encrypted with the submitted password, ZipCrypto (`zip -P`) or,
  when `aesEncryption=true` was sent, AES-256 (pyzipper); a QC report and statistics; with
  `publish_md5` (as TOPMed), `chr_20.zip.md5` too (`<hex>  chr_20.zip`, as md5sum writes).
  Each file entry of a JobResponse carries its remaining downloads (`count`); every
  JobResponse has `deletedOn` (epoch ms, 0 until a retire notice: `retire_notice`);
- each GET of /share/results/{hash}/{name} spends one download (400 at 0), also when the
  transfer then breaks, and ignores `Range` (200 and the whole file: a local workspace
  streams a bare InputStream); with `redirect` it answers 301 to a "presigned" URL, which
  honours `Range` and spends nothing. A body can drop mid-way once (`drop_after`) or arrive
  with one byte flipped (`corrupt`), to test resuming and integrity checks.
With `impute_uploads` (off by default: results then hold the fixed `DOSE` and `INFO`), the
server imputes what was submitted, as a real one does, so results of several servers can be
compared and merged: each uploaded file is streamed to the workdir while the submit is read
(bounded chunks; a refused submit's are deleted), and at export `chr20.dose.vcf.gz` is
written from them (`impute_dose`): a bgzipped Minimac4-like VCF with the upload's samples in
the upload's order and one `TYPED` record per uploaded biallelic site on chromosome 20 (its
'chr' style kept), `GT:DS` where DS is the sample's allele count from GT moved by a small
deterministic amount, INFO `AF`, `MAF` and `R2` = `emulated_r2(refpanel, position)` in
[0.3, 1.0], so servers given different panels estimate different r² per site. As a server
adds its panel's untyped sites, one `IMPUTED` record (C/T, the previous typed site's
genotypes) sits half-way between two consecutive uploaded sites: where several servers (and
nothing else) report a site, which is best depends on the panel. Also a matching
`chr20.info.gz` (Minimac4's columns SNP .. Rsq, Genotyped).
Faults tests switch on: bursts of HTTP 500 on status calls or on one result's GETs (those
spend no download), slow status answers, malformed JSON on status.

Tests read what it recorded: `submissions` (every accepted or refused submit's fields),
`submit_bytes` (request-body bytes received by submit POSTs, whatever the answer),
`downloads` (every GET of a result that spent a download: its `name`, the `range` it asked
for, the body bytes `sent`), `presigned` (GETs of presigned URLs, likewise),
`failed_downloads` (result GETs answered 500), `calls` (method and path of every request).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import secrets
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyzipper  # type: ignore[import-untyped]
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from imputehub.domain.vcf import bare_chromosome
from imputehub.files.bgzf import BgzfWriter

APP_ID = "imputationserver2@2.0.12"
KNOWN_FIELDS = frozenset(
    {
        "files",
        "input-files",
        "refpanel",
        "build",
        "phasing",
        "population",
        "mode",
        "r2Filter",
        "password",
        "aesEncryption",
        "meta",
        "job-name",
    }
)
PANELS = {
    "apps@1000g-phase-3-v5@2.0.0": (
        "1000 Genomes Phase 3 (Version 5) (GRCh37/hg19)",
        ["eur", "afr", "amr", "eas", "sas", "mixed", "off"],
    ),
    "apps@hapmap-2@2.0.0": ("HapMap 2 (GRCh37/hg19)", ["eur", "mixed", "off"]),
    "apps@topmed-r3@1.0.0": ("TOPMed r3 (GRCh38/hg38)", ["all"]),
}
PHASING = {
    "beagle": "Beagle 5.4 (phased output)",
    "eagle": "Eagle v2.4 (phased output)",
    "no_phasing": "No phasing",
}
R2_FILTERS = {"0": "off", "0.001": "0.001", "0.1": "0.1", "0.2": "0.2", "0.3": "0.3"}
SUBMIT_PATH = "/api/v2/jobs/submit/"
STEPS = ("Input Validation", "Quality Control", "Phasing and Imputation", "Summary")
DOSE = b"##fileformat=VCFv4.2\n##imputed by the emulator\n" + b"".join(
    f"20\t{60000 + 7 * i}\t.\tG\tA\t.\tPASS\tR2={(i * 37) % 101 / 100}\n".encode()
    for i in range(3000)
)
INFO = b"SNP\tREF(0)\tALT(1)\tALT_Frq\tMAF\tAvgCall\tRsq\n20:60343\tG\tA\t0.1\t0.1\t0.99\t0.91\n"
QC_REPORT = (
    b"Statistics:\nAlternative allele frequency > 0.5 sites: 0\nRemaining sites in total: 400\n"
)
EXCLUDED = b"#Position\tFilterType\tInfo\n20:61000\tAllele mismatch\t-\n"
SAMPLE_NOTE = "Samples: 50"
IMPUTED_CHROMOSOME = "20"  # the only chromosome in chr_20.zip
UPLOAD_CHUNK = 64 * 1024
# Minimac4's header lines for what `impute_dose` writes.
DOSE_HEADER = (
    "##fileformat=VCFv4.1\n"
    "##source=Minimac4 (emulated by tests/support/michigan_emulator.py)\n"
    "##phasing=full\n"
    '##INFO=<ID=AF,Number=1,Type=Float,Description="Estimated Alternate Allele Frequency">\n'
    '##INFO=<ID=MAF,Number=1,Type=Float,Description="Estimated Minor Allele Frequency">\n'
    '##INFO=<ID=R2,Number=1,Type=Float,Description="Estimated Imputation Accuracy (R-square)">\n'
    '##INFO=<ID=IMPUTED,Number=0,Type=Flag,Description="Marker was imputed but NOT genotyped">\n'
    '##INFO=<ID=TYPED,Number=0,Type=Flag,Description="Marker was genotyped AND imputed">\n'
    '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n'
    '##FORMAT=<ID=DS,Number=1,Type=Float,Description="Estimated Alternate Allele Dosage">\n'
)
INFO_HEADER = "SNP\tREF(0)\tALT(1)\tALT_Frq\tMAF\tAvgCall\tRsq\tGenotyped\n"


@dataclass
class EmulatedJob:
    id: str
    name: str
    user: str
    password: str
    fields: dict[str, list[str]]
    submitted_ms: int
    outcome: str  # success | failed | retired
    failure_message: str
    aes: bool = False  # the `aesEncryption` checkbox was on
    uploads: list[Path] = field(default_factory=list)  # kept with `impute_uploads` only
    state: int = 1
    position: int = 0
    status_calls: int = 0
    steps: list[dict[str, Any]] = field(default_factory=list)
    outputs: list[dict[str, Any]] = field(default_factory=list)
    deleted_ms: int = 0  # when its results are deleted, once a retire notice was sent


@dataclass
class ResultBlob:
    path: Path
    count: int


class MichiganEmulator:
    def __init__(self, workdir: Path, *, impute_uploads: bool = False) -> None:
        self.workdir = workdir
        # Results made from the uploaded files (`impute_dose`) rather than the fixed DOSE.
        self.impute_uploads = impute_uploads
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.tokens: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, EmulatedJob] = {}
        self.order: list[str] = []  # job ids, oldest first
        self.blobs: dict[tuple[str, str], ResultBlob] = {}
        self.submissions: list[dict[str, Any]] = []
        self.downloads: list[dict[str, Any]] = []
        self.presigned: list[dict[str, Any]] = []
        self.calls: list[tuple[str, str]] = []
        self.job_limit = 2
        self.maintenance = False
        self.phasing = dict(PHASING)  # method -> label, as the app's `phasing` param lists
        self.submit_bytes = 0
        self.download_count = 10
        self.redirect = False  # answer result GETs with 301 to a presigned-style URL
        self.presigned_base = ""  # where that URL points: this origin, unless set
        self.drop_after: dict[str, int] = {}  # file name -> bytes to send before dropping once
        self.corrupt: dict[str, int] = {}  # file name -> next bodies sent with a byte flipped
        self.publish_md5 = False  # export chr_20.zip.md5 next to chr_20.zip (TOPMed)
        self.status_failures: list[int] = []  # next status calls answer these HTTP codes
        self.status_delays: list[float] = []  # next status calls answer after these seconds
        self.status_garbage = 0  # next status calls answer 200 with malformed JSON
        self.download_failures: dict[str, int] = {}  # file name -> next GETs answering 500
        self.failed_downloads: list[str] = []
        self.outcomes: dict[str, tuple[str, str]] = {}  # job-name -> (outcome, failure message)
        self.steps_to_finish = 3  # status calls before a job reaches its final state
        # While set, a submit is recorded (and queued) but its answer withheld: the client
        # reached the server yet never learns the job id, as when it dies mid-request.
        self.hold_submits = False
        self._counter = 0
        self._lock = threading.Lock()
        self.base_url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ---- configuration -----------------------------------------------------------------

    def add_token(
        self,
        token: str,
        username: str = "alice",
        *,
        expires_in_days: float = 30.0,
        panels: Sequence[str] | None = None,
    ) -> None:
        """`panels`: the only panels this account may use (Cloudgene's `hasAccess`), which
        is all the app's params list to it; None: every panel."""
        expire = datetime.now(UTC) + timedelta(days=expires_in_days)
        self.tokens[token] = {"username": username, "expire": expire, "panels": panels}

    def like_topmed(self) -> None:
        """Configured as the TOPMed Imputation Server: no beagle, 3 jobs per user."""
        self.phasing.pop("beagle", None)
        self.job_limit = 3

    def submit_posts(self) -> int:
        """How many submit POSTs reached the server (accepted or not)."""
        return sum(1 for m, path in self.calls if m == "POST" and path.startswith(SUBMIT_PATH))

    def fail_job(self, job_name: str, message: str) -> None:
        """The job submitted under this name fails in validation with `message`."""
        self.outcomes[job_name] = ("failed", message)

    def retire_job(self, job_name: str) -> None:
        """The job submitted under this name finishes, then its results are deleted (state 7)."""
        self.outcomes[job_name] = ("retired", "")

    def retire_notice(self, job_name: str, deletes_at: datetime) -> None:
        """The job submitted under this name was sent its retire notice: state 8 (success,
        retire notice sent), its results to be deleted at `deletes_at` (`deletedOn`)."""
        job = self.job_named(job_name)
        job.state = 8
        job.deleted_ms = int(deletes_at.timestamp() * 1000)

    def blob(self, job_name: str, name: str) -> ResultBlob:
        """The result file `name` of the job submitted under `job_name`."""
        job = self.job_named(job_name)
        [found] = [
            self.blobs[(entry["hash"], entry["name"])]
            for param in job.outputs
            for entry in param["files"]
            if entry["name"] == name and (entry["hash"], entry["name"]) in self.blobs
        ]
        return found

    def job_named(self, name: str) -> EmulatedJob:
        matches = [job for job in self.jobs.values() if job.name == name]
        assert len(matches) == 1, f"{len(matches)} jobs named {name!r}"
        return matches[0]

    def spent(self, name: str) -> int:
        """How many downloads of the result file `name` were spent (all jobs together)."""
        return sum(
            self.download_count - blob.count for (_, n), blob in self.blobs.items() if n == name
        )

    def occupy(
        self, username: str, count: int, *, age_seconds: float = 0.0, state: int = 2
    ) -> list[EmulatedJob]:
        """`count` other jobs of this user, running until a test finishes them (or, with
        `state=4` and an age, a history of finished jobs submitted that long ago)."""
        made: list[EmulatedJob] = []
        submitted_ms = int((time.time() - age_seconds) * 1000)
        for index in range(count):
            with self._lock:
                self._counter += 1
                job_id = f"job-20260101-090000-{self._counter:03d}"
            job = EmulatedJob(
                id=job_id,
                name=f"other-{index}",
                user=username,
                password=secrets.token_hex(8),
                fields={},
                submitted_ms=submitted_ms,
                outcome="success",
                failure_message="",
                state=state,
            )
            self.jobs[job_id] = job
            self.order.append(job_id)
            made.append(job)
        return made

    def accepted(self, name: str | None = None) -> list[dict[str, Any]]:
        """The submissions the server accepted (optionally only those under `name`)."""
        return [
            s
            for s in self.submissions
            if s["status"] == 200 and (name is None or s["fields"].get("job-name") == [name])
        ]

    # ---- serving -----------------------------------------------------------------------

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app(), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        while not self._server.started:
            time.sleep(0.01)
        self.base_url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def app(self) -> ASGIApp:
        routes = Starlette(
            routes=[
                Route("/api/v2/server", self._server_info),
                Route("/api/v2/server/counters", self._counters),
                Route("/api/v2/server/apps/{app_id}", self._app_info),
                Route("/api/v2/tokens/verify", self._verify, methods=["POST"]),
                Route("/api/v2/jobs/submit/{app}", self._submit, methods=["POST"]),
                Route("/api/v2/jobs", self._list),
                Route("/api/v2/jobs/{job_id}", self._status),
                Route("/api/v2/jobs/{job_id}/status", self._status),
                Route("/api/v2/jobs/{job_id}/cancel", self._cancel),
                Route("/share/results/{hash}/{name:path}", self._download),
                Route("/presigned/{hash}/{name:path}", self._presigned),
            ]
        )

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not scope["path"].startswith(SUBMIT_PATH):
                await routes(scope, receive, send)
                return

            async def counted() -> Message:  # every body byte a submit POST delivers
                message = await receive()
                if message["type"] == "http.request":
                    self.submit_bytes += len(message.get("body", b""))
                return message

            await routes(scope, counted, send)

        return app

    # ---- helpers -----------------------------------------------------------------------

    def _user(self, request: Request) -> str | None:
        self.calls.append((request.method, request.url.path))
        token = self.tokens.get(request.headers.get("X-Auth-Token", ""))
        if token is None or token["expire"] < datetime.now(UTC):
            return None
        return str(token["username"])

    @staticmethod
    def _unauthorized() -> Response:
        return JSONResponse({"message": "Unauthorized"}, status_code=401)

    @staticmethod
    def _message(message: str, status: int) -> JSONResponse:
        return JSONResponse({"message": message, "success": False}, status_code=status)

    def _response(self, job: EmulatedJob) -> dict[str, Any]:
        now = int(time.time() * 1000)
        return {
            "application": "Genotype Imputation 2.0.12",
            "applicationId": "imputationserver2",
            "id": job.id,
            "name": job.name,
            "state": job.state,
            "positionInQueue": job.position if job.state == 1 else -1,
            "submittedOn": job.submitted_ms,
            "startTime": job.submitted_ms + 1000 if job.state > 1 else 0,
            "endTime": now if job.state >= 4 else 0,
            "currentTime": now,
            "steps": job.steps,
            "outputParams": self._outputs(job) if job.state in (4, 5, 8) else [],
            "deletedOn": job.deleted_ms,
        }

    def _outputs(self, job: EmulatedJob) -> list[dict[str, Any]]:
        """The job's outputs, each file with the downloads it has left."""
        return [
            {**param, "files": [self._live(entry) for entry in param["files"]]}
            for param in job.outputs
        ]

    def _live(self, entry: dict[str, Any]) -> dict[str, Any]:
        blob = self.blobs.get((entry["hash"], entry["name"]))
        return entry if blob is None else {**entry, "count": blob.count}

    def _step(self, job: EmulatedJob, index: int, message: str, kind: int = 0) -> None:
        job.steps.append(
            {
                "id": index + 1,
                "name": STEPS[index],
                "logMessages": [
                    {"message": message, "type": kind, "time": int(time.time() * 1000)}
                ],
            }
        )

    def _advance(self, job: EmulatedJob) -> None:
        """One status call's worth of progress."""
        if job.state not in (1, 2, 3):
            return
        job.status_calls += 1
        calls = job.status_calls
        if job.outcome == "failed" and calls >= 2:
            self._step(job, 0, f"<b>Error:</b> {job.failure_message}", kind=1)
            job.state = 5
            self._export(job, failed=True)
        elif calls >= self.steps_to_finish:
            self._step(job, 3, "<b>Imputation finished.</b><br>Results are ready.")
            self._export(job, failed=False)
            job.state = 7 if job.outcome == "retired" else 4
        elif calls == self.steps_to_finish - 1:
            job.state = 3
            self._step(job, 2, "Imputation of chr20 &amp; export of results")
        elif calls >= 1:
            job.state = 2
            self._step(job, 0, f"{SAMPLE_NOTE}<br>Chromosomes: 20<br>Build: hg19")
            self._step(job, 1, "Remaining sites in total: 400", kind=3)

    def _blob(self, job: EmulatedJob, name: str, content: bytes) -> dict[str, Any]:
        digest = hashlib.sha256(f"{job.id}/{name}/{secrets.token_hex(8)}".encode()).hexdigest()
        path = self.workdir / digest
        path.write_bytes(content)
        self.blobs[(digest, name)] = ResultBlob(path=path, count=self.download_count)
        return {
            "name": name,
            "path": f"{job.id}/output/{name}",
            "hash": digest,
            "count": self.download_count,
            "size": f"{len(content)} bytes",
        }

    def _export(self, job: EmulatedJob, *, failed: bool) -> None:
        statistics = [self._blob(job, "snps-excluded.txt", EXCLUDED)]
        qc = [self._blob(job, "qc_report.txt", QC_REPORT)]
        outputs = [_param(5, "qcreport", qc), _param(6, "statistics", statistics)]
        if not failed:
            content = self._zip(job)
            zipped = [self._blob(job, "chr_20.zip", content)]
            if self.publish_md5:
                line = f"{hashlib.md5(content, usedforsecurity=False).hexdigest()}  chr_20.zip\n"
                zipped.append(self._blob(job, "chr_20.zip.md5", line.encode()))
            outputs.insert(0, _param(7, "output", zipped))
        # Not a download: real servers list log outputs too, which clients must skip.
        log = {"name": "job.txt", "path": f"{job.id}/logs/job.txt", "hash": "x", "count": 0}
        outputs.append(_param(8, "logfile", [log], download=False))
        job.outputs = outputs

    def _upload_path(self, index: int) -> Path:
        """Where an uploaded file is kept (a name of its own: job ids are not known yet)."""
        folder = self.workdir / "uploads"
        folder.mkdir(exist_ok=True)
        return folder / f"{secrets.token_hex(8)}-{index}.upload"

    def _zip(self, job: EmulatedJob) -> bytes:
        """chr_20.zip as the server makes it: ZipCrypto with the job's password (`zip -P`),
        or AES-256 when the job asked for it."""
        password, aes = job.password, job.aes
        with tempfile.TemporaryDirectory(dir=self.workdir) as tmp:
            folder = Path(tmp)
            if self.impute_uploads and job.uploads:
                impute_dose(
                    job.uploads,
                    job.fields.get("refpanel", [""])[0],
                    dose=folder / "chr20.dose.vcf.gz",
                    info=folder / "chr20.info.gz",
                )
            else:
                (folder / "chr20.dose.vcf.gz").write_bytes(gzip.compress(DOSE))
                (folder / "chr20.info.gz").write_bytes(gzip.compress(INFO))
            if aes:
                with pyzipper.AESZipFile(
                    folder / "out.zip",
                    "w",
                    compression=pyzipper.ZIP_DEFLATED,
                    encryption=pyzipper.WZ_AES,
                ) as archive:
                    archive.setpassword(password.encode())
                    archive.setencryption(pyzipper.WZ_AES, nbits=256)
                    for name in ("chr20.dose.vcf.gz", "chr20.info.gz"):
                        archive.write(folder / name, name)
                return (folder / "out.zip").read_bytes()
            subprocess.run(
                ["zip", "-q", "-P", password, "out.zip", "chr20.dose.vcf.gz", "chr20.info.gz"],
                cwd=folder,
                check=True,
            )
            return (folder / "out.zip").read_bytes()

    # ---- endpoints ---------------------------------------------------------------------

    async def _server_info(self, request: Request) -> Response:
        user = self._user(request)
        return JSONResponse(
            {
                "name": "Michigan Imputation Server (emulated)",
                "user": {"username": user} if user else None,
                "apps": [{"id": APP_ID, "name": "Genotype Imputation", "version": "2.0.12"}],
                "maintenace": self.maintenance,
                "blocked": False,
            }
        )

    async def _counters(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))  # anonymous
        states = [job.state for job in self.jobs.values()]
        return JSONResponse(
            {
                "complete": {"jobs": sum(1 for s in states if s in (4, 8))},
                "queue": {"size": sum(1 for s in states if s == 1)},
                "users": len({token["username"] for token in self.tokens.values()}),
            }
        )

    async def _app_info(self, request: Request) -> Response:
        # Anonymous allowed; a valid token sees only the panels its account may use.
        user = self._user(request)
        if request.path_params["app_id"] != APP_ID:
            app_id = request.path_params["app_id"]
            return self._message(f"Application '{app_id}' not found.", 404)
        allowed = None
        if user is not None:
            allowed = self.tokens[request.headers["X-Auth-Token"]]["panels"]
        panels = {k: v for k, v in PANELS.items() if allowed is None or k in allowed}
        return JSONResponse(
            {
                "id": APP_ID,
                "name": "Genotype Imputation",
                "version": "2.0.12",
                "params": [
                    {
                        "id": "refpanel",
                        "type": "app_list",  # in the order the panels are installed
                        "values": [{"key": k, "value": v[0]} for k, v in panels.items()],
                    },
                    {"id": "files", "type": "local_folder"},
                    {
                        "id": "build",
                        "type": "list",
                        "value": "hg19",
                        "values": _listed({"hg19": "GRCh37/hg19", "hg38": "GRCh38/hg38"}),
                    },
                    {"id": "r2Filter", "type": "list", "value": "0", "values": _listed(R2_FILTERS)},
                    {
                        "id": "phasing",
                        "type": "list",
                        "value": "eagle",
                        "values": _listed(self.phasing),
                    },
                    {
                        "id": "population",
                        "type": "binded_list",
                        "bind": "refpanel",
                        "values": [
                            {
                                "key": key,
                                "label": name,
                                "value": None,
                                "values": [{"key": p, "value": p.upper()} for p in populations],
                            }
                            for key, (name, populations) in panels.items()
                        ],
                    },
                    {
                        "id": "mode",
                        "type": "list",
                        "value": "imputation",
                        "values": _listed(
                            {"imputation": "Quality Control & Imputation", "qconly": "QC Only"}
                        ),
                    },
                ],
            }
        )

    async def _verify(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        form = await request.form()
        token = self.tokens.get(str(form.get("token", "")))
        if token is None:
            return JSONResponse({"valid": False, "message": "Invalid API Token."})
        if token["expire"] < datetime.now(UTC):
            return JSONResponse({"valid": False, "message": "API Token expired."})
        return JSONResponse(
            {
                "valid": True,
                "message": "API Token was created by " + token["username"],
                "username": token["username"],
                "name": token["username"].title(),
                "mail": f"{token['username']}@example.org",
                "expire": token["expire"].isoformat(),
            }
        )

    async def _submit(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return self._unauthorized()
        async with request.form(max_files=100, max_fields=100) as form:
            fields: dict[str, list[str]] = {}
            files: list[dict[str, Any]] = []
            uploads: list[Path] = []
            for key, value in form.multi_items():
                if isinstance(value, UploadFile):
                    digest = hashlib.sha256()
                    size = 0
                    kept = self._upload_path(len(uploads)) if self.impute_uploads else None
                    with contextlib.ExitStack() as stack:
                        out = stack.enter_context(kept.open("wb")) if kept else None
                        while chunk := await value.read(UPLOAD_CHUNK):
                            digest.update(chunk)
                            size += len(chunk)
                            if out is not None:
                                out.write(chunk)
                    if kept is not None:
                        uploads.append(kept)
                    files.append(
                        {"field": key, "filename": value.filename, "size": size,
                         "sha256": digest.hexdigest()}
                    )  # fmt: skip
                else:
                    fields.setdefault(key, []).append(value)
        record: dict[str, Any] = {"user": user, "fields": fields, "files": files}
        self.submissions.append(record)
        response = self._check_submit(request, user, fields, files, uploads)
        record["status"] = response.status_code
        if response.status_code != 200:
            for path in uploads:  # a refused submit keeps nothing
                path.unlink(missing_ok=True)
        # The flag is flipped from the test's thread, which cannot set this loop's Event.
        while self.hold_submits:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        return response

    def _check_submit(
        self,
        request: Request,
        user: str,
        fields: dict[str, list[str]],
        files: list[dict[str, Any]],
        uploads: list[Path],
    ) -> Response:
        if self.maintenance:
            return PlainTextResponse("Service Unavailable", status_code=503)
        if request.path_params["app"] != "imputationserver2":
            return self._message(f"Application '{request.path_params['app']}' not found.", 404)
        for key in [*fields, *(f["field"] for f in files)]:
            if key not in KNOWN_FIELDS:
                return self._message(f"Parameter '{key}' not found.", 400)
        active = [j for j in self.jobs.values() if j.user == user and j.state in (1, 2, 3)]
        if len(active) >= self.job_limit:
            return self._message(
                f"Only {self.job_limit} jobs per user can be executed simultaneously.", 400
            )
        refpanel = fields.get("refpanel", [""])[0]
        if refpanel not in PANELS:
            return PlainTextResponse(f"Reference panel '{refpanel}' not found.", status_code=400)
        if not files:
            return PlainTextResponse("No input files uploaded.", status_code=400)
        with self._lock:
            self._counter += 1
            job_id = f"job-20260101-101500-{self._counter:03d}"
        name = fields.get("job-name", [""])[0]
        outcome, message = self.outcomes.get(name, ("success", ""))
        job = EmulatedJob(
            id=job_id,
            name=name,
            user=user,
            password=fields.get("password", [secrets.token_hex(8)])[0],
            fields=fields,
            submitted_ms=int(time.time() * 1000),
            outcome=outcome,
            failure_message=message,
            aes=fields.get("aesEncryption") == ["true"],  # a checkbox: on only when sent
            position=len(active),
            uploads=uploads,
        )
        self.jobs[job_id] = job
        self.order.append(job_id)
        return JSONResponse(
            {
                "success": True,
                "message": "Your job was successfully added to the job queue.",
                "id": job_id,
            }
        )

    async def _list(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return self._unauthorized()
        mine = [self.jobs[i] for i in reversed(self.order) if self.jobs[i].user == user]
        size = 15
        pages = max(1, -(-len(mine) // size))
        page = int(request.query_params.get("page", "1"))
        data = mine[(page - 1) * size : page * size]
        return JSONResponse(
            {
                "count": len(mine),
                "page": page,
                "pageSize": size,
                "prev": page - 1 if page > 1 else None,
                "next": page + 1 if page < pages else None,
                "pages": list(range(1, pages + 1)),
                "data": [self._response(job) for job in data],
            }
        )

    def _job(self, request: Request, user: str) -> EmulatedJob | Response:
        job = self.jobs.get(request.path_params["job_id"])
        if job is None:
            return self._message(f"Job {request.path_params['job_id']} not found.", 404)
        if job.user != user:
            return self._message("Access denied.", 403)
        return job

    async def _status(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return self._unauthorized()
        if self.status_failures:
            code = self.status_failures.pop(0)
            return PlainTextResponse("Internal Server Error", status_code=code)
        if self.status_delays:
            # Slow, not dead: the job still moves on, whether or not the client waited.
            await asyncio.sleep(self.status_delays.pop(0))
        job = self._job(request, user)
        if isinstance(job, Response):
            return job
        self._advance(job)
        if self.status_garbage:
            self.status_garbage -= 1
            cut = JSONResponse(self._response(job)).body[:40]  # a proxy cut the answer short
            return Response(cut, media_type="application/json")
        return JSONResponse(self._response(job))

    async def _cancel(self, request: Request) -> Response:
        user = self._user(request)
        if user is None:
            return self._unauthorized()
        job = self._job(request, user)
        if isinstance(job, Response):
            return job
        if job.state in (1, 2, 3):  # cancelling a finished job is a harmless no-op
            job.state = 6
        return JSONResponse(self._response(job))

    async def _download(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        key = (request.path_params["hash"], request.path_params["name"])
        blob = self.blobs.get(key)
        if blob is None:
            return self._message("Not found.", 404)
        if blob.count <= 0:
            return self._message("number of max downloads exceeded.", 400)
        if self.download_failures.get(key[1], 0) > 0:
            self.download_failures[key[1]] -= 1
            self.failed_downloads.append(key[1])
            return PlainTextResponse("Internal Server Error", status_code=500)
        blob.count -= 1  # spent before streaming, whatever happens to the transfer
        record = {"name": key[1], "range": request.headers.get("Range"), "sent": 0}
        self.downloads.append(record)
        if self.redirect:
            record["redirected"] = True
            location = f"{self.presigned_base}/presigned/{key[0]}/{key[1]}"
            return Response(status_code=301, headers={"Location": location})
        # A local workspace streams the file as a bare InputStream: no Range support.
        return self._body(blob, key[1], record, start=0)

    async def _presigned(self, request: Request) -> Response:
        self.calls.append((request.method, request.url.path))
        name = request.path_params["name"]
        blob = self.blobs.get((request.path_params["hash"], name))
        if blob is None:
            return PlainTextResponse("NoSuchKey", status_code=404)
        header = request.headers.get("Range", "")
        start = 0
        if header.startswith("bytes=") and header.endswith("-"):
            start = int(header[len("bytes=") : -1])
        record = {"name": name, "range": header or None, "sent": 0}
        self.presigned.append(record)
        return self._body(blob, name, record, start=start)

    def _body(self, blob: ResultBlob, name: str, record: dict[str, Any], *, start: int) -> Response:
        size = blob.path.stat().st_size
        drop = self.drop_after.pop(name, None)
        flip: int | None = None
        if self.corrupt.get(name, 0) > 0:
            self.corrupt[name] -= 1
            flip = size // 2
        headers = {"Content-Length": str(size - start)}
        status = 200
        if start:
            status = 206
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        return StreamingResponse(
            _stream(blob.path, start, drop, flip, record), status_code=status, headers=headers
        )


def _listed(values: dict[str, str]) -> list[dict[str, str]]:
    """A `list` param's values as Cloudgene 3 sends them: key and label, sorted by key."""
    return [{"key": key, "value": values[key]} for key in sorted(values)]


def _param(
    index: int, name: str, files: list[dict[str, Any]], *, download: bool = True
) -> dict[str, Any]:
    return {"id": index, "name": name, "description": name, "download": download, "files": files}


async def _stream(
    path: Path, start: int, drop: int | None, flip: int | None, record: dict[str, Any]
) -> AsyncIterator[bytes]:
    """The file from `start`; `drop`: bytes to send before the connection drops; `flip`:
    the file offset of a byte sent damaged. Counts what it sent in `record["sent"]`."""
    with path.open("rb") as handle:
        handle.seek(start)
        offset = start
        while chunk := handle.read(4096):
            if flip is not None and offset <= flip < offset + len(chunk):
                at = flip - offset
                chunk = chunk[:at] + bytes([chunk[at] ^ 0xFF]) + chunk[at + 1 :]
            sent = offset - start
            if drop is not None and sent + len(chunk) > drop:
                record["sent"] += drop - sent
                yield chunk[: drop - sent]
                # The connection drops mid-body: uvicorn closes it short of Content-Length.
                raise ConnectionResetError("emulated connection drop")
            offset += len(chunk)
            record["sent"] += len(chunk)
            yield chunk


def emulated_r2(refpanel: str, position: int) -> float:
    """The r² the emulated server estimates at a site: in [0.3, 1.0], fixed by the panel and
    the position (so each panel is better at some sites than another panel)."""
    digest = hashlib.sha256(f"{refpanel}:{position}".encode()).digest()
    return round(0.3 + 0.7 * int.from_bytes(digest[:4], "big") / 0xFFFFFFFF, 3)


def _nudge(position: int, sample: int) -> float:
    """A small deterministic dosage error (0 .. 0.09) for one sample at one site."""
    return ((position * 31 + sample * 17) % 10) / 100


def _upload_lines(path: Path) -> Iterator[str]:
    """An uploaded VCF's lines, gzip/bgzip or plain, streamed."""
    with path.open("rb") as probe:
        packed = probe.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rt") if packed else path.open() as handle:
        for line in handle:
            yield line.rstrip("\r\n")


def _dose_lines(uploads: Iterable[Path], refpanel: str) -> Iterator[tuple[str, str | None]]:
    """(dose VCF line, info line or None) for what `impute_dose` writes, in order."""
    samples: list[str] | None = None
    contigs: list[str] = []
    previous: list[str] | None = None  # the last typed site written
    for path in uploads:
        for line in _upload_lines(path):
            fields = line.split("\t")
            if line.startswith("##"):
                if samples is None and line.startswith("##contig="):
                    contigs.append(line)  # the first upload's, as Minimac4 keeps them
            elif line.startswith("#"):
                if samples is None:  # the first upload's samples, in its order
                    samples = fields[9:]
                    header = "\t".join([*fields[:8], "FORMAT", *samples])
                    yield DOSE_HEADER + "".join(f"{c}\n" for c in contigs) + header, None
            elif (
                samples is not None
                and len(fields) >= 9 + len(samples)
                and bare_chromosome(fields[0]) == IMPUTED_CHROMOSOME
                and "," not in fields[4]
                and fields[4] not in (".", "*")
            ):
                if previous is not None and int(fields[1]) - int(previous[1]) >= 2:
                    middle = (int(previous[1]) + int(fields[1])) // 2
                    untyped = [previous[0], str(middle), ".", "C", "T", *previous[5:]]
                    yield _dose_record(untyped, len(samples), refpanel, typed=False)
                yield _dose_record(fields, len(samples), refpanel, typed=True)
                previous = fields


def _dose_record(fields: list[str], samples: int, refpanel: str, *, typed: bool) -> tuple[str, str]:
    chrom, pos, ident, ref, alt = fields[:5]
    position = int(pos)
    keys = fields[8].split(":")
    at = keys.index("GT") if "GT" in keys else None
    calls: list[str] = []
    total = 0.0
    for sample in range(samples):
        values = fields[9 + sample].split(":")
        gt = values[at] if at is not None and at < len(values) else "."
        alleles = ["1" if a == "1" else "0" for a in gt.replace("/", "|").split("|")][:2]
        alleles += ["0"] * (2 - len(alleles))
        count = alleles.count("1")
        nudge = _nudge(position, sample)
        dose = count + nudge if count < 2 else count - nudge
        total += dose
        calls.append(f"{'|'.join(alleles)}:{dose:.3f}")
    af = total / (2 * samples) if samples else 0.0
    maf = min(af, 1 - af)
    r2 = emulated_r2(refpanel, position)
    flag = "TYPED" if typed else "IMPUTED"
    info = f"AF={af:.5f};MAF={maf:.5f};R2={r2:.5f};{flag}"
    record = "\t".join([chrom, pos, ident, ref, alt, ".", "PASS", info, "GT:DS", *calls])
    snp = f"{chrom}:{pos}:{ref}:{alt}"
    genotyped = "Genotyped" if typed else "Imputed"
    row = f"{snp}\t{ref}\t{alt}\t{af:.5f}\t{maf:.5f}\t0.99000\t{r2:.5f}\t{genotyped}"
    return record, row


def impute_dose(uploads: Sequence[Path], refpanel: str, *, dose: Path, info: Path) -> None:
    """Write the emulated imputation of `uploads` with panel `refpanel` (see the module's
    docstring): `dose` bgzipped, `info` gzipped, both streamed line by line."""
    writer = BgzfWriter()
    with dose.open("wb") as out, gzip.open(info, "wt") as rows:
        rows.write(INFO_HEADER)
        for line, row in _dose_lines(uploads, refpanel):
            out.write(writer.write((line + "\n").encode()))
            if row is not None:
                rows.write(row + "\n")
        out.write(writer.close())


@contextlib.contextmanager
def running_emulator(workdir: Path, *, impute_uploads: bool = False) -> Iterator[MichiganEmulator]:
    emulator = MichiganEmulator(workdir, impute_uploads=impute_uploads)
    emulator.start()
    try:
        yield emulator
    finally:
        emulator.stop()


def bgzipped_vcf(samples: int = 25) -> bytes:
    """A small gzip VCF for upload (the emulator does not parse inputs)."""
    header = "\t".join(f"S{i}" for i in range(samples))
    lines = [
        "##fileformat=VCFv4.2",
        f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{header}",
        *(f"20\t{60000 + i}\t.\tG\tA\t.\tPASS\t.\tGT\t" + "\t".join(["0|1"] * samples)
          for i in range(50)),
    ]  # fmt: skip
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb") as out:
        out.write(("\n".join(lines) + "\n").encode())
    return buffer.getvalue()
