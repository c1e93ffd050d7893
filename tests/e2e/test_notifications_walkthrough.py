"""Issue 6's "done when", for real: a fresh `serve`, a local job, and everything a user hears.

A user who wants every e-mail registers a webhook and submits the demo targets to the local
engine; `imputehub jobs watch` (a separate process) shows the stages live and exits 0; the
SMTP server (aiosmtpd on loopback) receives one mail per stage and the webhook receiver one
signed POST per stage; the in-app notifications list them; an admin reads the completed job
at /metrics (with the metrics token) and /api/v1/admin/stats.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest

from imputehub.notify.webhooks import verify_signature
from tests.e2e.processes import Cli, HubProcess, hub_env
from tests.support import databases
from tests.support.peers import free_port
from tests.support.smtp_server import smtp_server
from tests.support.webhook_receiver import receiving

# One database: the deliveries are tested on both under tests/integration/notify.
pytestmark = pytest.mark.parametrize(
    "empty_database_url", [databases.preferring_postgres()], indirect=True
)

PASSWORD = "notifications walk-through password"
METRICS_TOKEN = "metrics-scrape-token-for-the-test-0123456789"
ADDRESS = "admin@lab.example.org"
STAGES = ["job.queued", "job.running", "job.completed", "job.results_ready"]


async def test_a_user_hears_of_every_stage_by_mail_webhook_app_and_watch(
    tmp_path: Path, empty_database_url: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with smtp_server() as mail:
        async with receiving() as receiver:
            env = hub_env(
                tmp_path,
                empty_database_url,
                IMPUTEHUB_DATA_DIR=str(tmp_path / "data"),
                IMPUTEHUB_ADMIN_PASSWORD=PASSWORD,
                IMPUTEHUB_ADMIN_EMAIL=ADDRESS,
                IMPUTEHUB_PUBLIC_URL=base,
                IMPUTEHUB_SMTP_HOST=mail.host,
                IMPUTEHUB_SMTP_PORT=str(mail.port),
                IMPUTEHUB_SMTP_SECURITY="none",
                IMPUTEHUB_WEBHOOK_ALLOW_PRIVATE="true",  # the receiver is on loopback
                IMPUTEHUB_METRICS_TOKEN=METRICS_TOKEN,
                IMPUTEHUB_ENGINE_POLL_INTERVAL_SECONDS="0.5",
                IMPUTEHUB_ENGINE_HEAP_MB="1024",
                IMPUTEHUB_ENGINE_THREADS="1",
            )
            user = Cli(env, tmp_path)
            with HubProcess("serve", "--port", str(port), env=env, cwd=tmp_path, name="hub") as hub:
                await asyncio.to_thread(hub.wait_until_healthy, base)
                await follow_a_job(base, user, mail, receiver, tmp_path, hub)
                assert hub.stop() == 0, hub.describe()


async def follow_a_job(base, user, mail, receiver, tmp_path, hub) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=f"{base}/api/v1", timeout=30) as api:
        login = await api.post("/auth/login", json={"username": "admin", "password": PASSWORD})
        api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
        every_mail = [{"kind": kind, "channel": "email", "enabled": True} for kind in STAGES]
        chosen = await api.patch("/notifications/preferences", json={"preferences": every_mail})
        assert chosen.status_code == 200, chosen.text
        hook = await api.post("/webhooks", json={"url": receiver.url})
        assert hook.status_code == 201, hook.text
        secret = hook.json()["secret"]

        await asyncio.to_thread(user.ok, "testdata", "--panel", "demo", "--out", "demo")
        targets = tmp_path / "demo" / "demo.targets.vcf.gz"
        with targets.open("rb") as handle:
            uploaded = await api.post("/files", files={"file": (targets.name, handle.read())})
        assert uploaded.status_code == 201, uploaded.text
        job = await api.post(
            "/jobs",
            json={
                "name": "heard of at every stage",
                "service_id": "local",
                "reference_panel_id": "demo",
                "input_file_ids": [uploaded.json()["id"]],
                "build": "hg19",
                "phasing": "beagle",
            },
        )
        assert job.status_code == 201, job.text
        job_id = job.json()["id"]

        # `jobs watch` in its own process, following the live stream to the end.
        watch = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "imputehub",
            "jobs",
            "watch",
            job_id,
            "--url",
            base,
            env={**user.env, "IMPUTEHUB_TOKEN": api.headers["Authorization"][7:]},
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(watch.communicate(), 240)
        shown = out.decode()
        assert watch.returncode == 0, f"{shown}{err.decode()}\n{hub.describe()}"
        assert "queued" in shown
        assert "running" in shown
        assert shown.rstrip().endswith("job completed")

        mails = await mail.wait_for(len(STAGES), within=60)
        posts = await receiver.wait_for(len(STAGES), within=60)

        assert {m.message["Subject"] for m in mails} == {
            "Job 'heard of at every stage' is queued",
            "Job 'heard of at every stage' is running",
            "Job 'heard of at every stage' completed",
            "Results of job 'heard of at every stage' are ready",
        }
        assert all(m.rcpt_tos == [ADDRESS] for m in mails)
        ready = next(m for m in mails if m.message["Subject"].startswith("Results"))
        assert f"{base}/api/v1/jobs/{job_id}/results" in ready.body("plain")
        kinds = []
        for post in posts:
            header = post.headers["x-imputehub-signature"]
            assert verify_signature(secret, header, post.body, now=post.received_at), header
            kinds.append(json.loads(post.body)["type"])
        assert sorted(kinds) == sorted(STAGES)

        notes = (await api.get("/notifications")).json()
        items = notes["items"] if isinstance(notes, dict) else notes
        assert {n["kind"] for n in items if n["job_id"] == job_id} == set(STAGES)

        async with httpx.AsyncClient(timeout=30) as admin:
            metrics = await admin.get(
                f"{base}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
            )
            stats = await admin.get(f"{base}/api/v1/admin/stats", headers=api.headers)
        assert metrics.status_code == 200, metrics.text
        assert 'imputehub_jobs{service="local",status="completed"} 1' in metrics.text
        assert stats.json()["by_status"]["completed"] == 1
