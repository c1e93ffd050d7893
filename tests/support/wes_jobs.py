"""Hub jobs on a GA4GH WES service, for the WES connector's hub-level tests."""

from __future__ import annotations

from typing import Any

from imputehub.db.models import Job, User
from imputehub.runtime import Runtime
from tests.support import factories


async def wes_hub_job(
    runtime: Runtime,
    base_url: str,
    *,
    credential: str | None = None,
    content: bytes | None = None,
    **config: Any,
) -> Job:
    """A pending job for a `ga4gh_wes` service at `base_url` with `config` as api_config,
    holding `credential` as the platform's (sent as a bearer token)."""
    now = runtime.clock.now()
    async with runtime.db.session() as session:
        user = User(username="erin", password_hash="!", role="user", created_at=now, updated_at=now)
        session.add(user)
    service = await factories.make_service(
        runtime,
        slug="wes",
        api_type="ga4gh_wes",
        base_url=base_url,
        api_config=config,
        credential_encrypted=runtime.vault.encrypt(credential) if credential else None,
    )
    panel = await factories.make_panel(runtime, service, slug="demo", panel_id="demo")
    stored = await factories.make_file(runtime, user.id, content, filename="study.vcf.gz")
    return await factories.make_job(
        runtime, user_id=user.id, service=service, panel=panel, files=[stored]
    )
