"""Signed artifacts on the cloud side: publish, serve to gateways, record what they report.

Publishing signs with the CA folder's Ed25519 key (``CertificateAuthority.signing_key``)
and stores envelope and content; versions only grow, so a "rollback" is a new version
with old content (gateways refuse anything not newer than what they run). Gateways fetch
the latest version over mutual TLS and report ``verified``/``refused`` with the reason;
the reports are what an admin reads when a rollout stalls. Which gateway should run
which artifact (assignment, staged rollout) is the model-catalogue work that builds on
this.

The gateways' HTTP routes over this service are ``artifact_routes``.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ldt.cloud.errors import CloudError
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.store.artifacts import ArtifactReport
from ldt.cloud.store.base import Store
from ldt.contract.artifacts import ARTIFACT_KINDS, ArtifactError, sign_artifact

__all__ = ["REPORT_STATUSES", "ArtifactReport", "ArtifactService"]

_log = logging.getLogger("ldt.cloud.artifacts")

REPORT_STATUSES = ("downloaded", "verified", "refused", "running", "failed")
_MAX_REASON = 1000


class ArtifactService:
    """Artifacts in the store, signed by the CA folder's signing key."""

    def __init__(self, store: Store, ca: CertificateAuthority) -> None:
        self.store = store
        self.ca = ca

    async def publish(
        self, kind: str, name: str, content: bytes, version: int | None = None
    ) -> dict[str, Any]:
        """Sign and store ``content`` as the next version (or ``version``, if newer)."""
        latest = await self.store.artifacts.latest_version(kind, name) or 0
        version = latest + 1 if version is None else version
        if version <= latest:
            raise CloudError(
                f"{kind} {name} is at version {latest}: publish a higher one (a rollback is a"
                " new version with the old content)"
            )
        try:
            envelope = sign_artifact(self.ca.signing_key, kind, name, version, content)
        except ArtifactError as exc:
            raise CloudError(str(exc)) from None
        await self.store.artifacts.add(
            kind, name, version, envelope=envelope, content=content, created_at_ms=_ms()
        )
        _log.info("artifact published", extra={"kind": kind, "artifact": name, "version": version})
        return envelope

    async def latest(self, kind: str, name: str) -> tuple[dict[str, Any], bytes] | None:
        """The newest version's envelope and content."""
        found = await self.store.artifacts.latest(kind, name)
        return None if found is None else (found.envelope, found.content)

    async def report(self, gateway_id: str, body: Any) -> ArtifactReport:
        """Record a gateway's report; ``CloudError`` for a malformed one."""
        if not isinstance(body, dict):
            raise CloudError("the report must be an object")
        kind, name, version = body.get("kind"), body.get("name"), body.get("version")
        status, reason = body.get("status"), body.get("reason")
        if kind not in ARTIFACT_KINDS or not isinstance(name, str) or not name:
            raise CloudError("the report needs a known kind and a name")
        if isinstance(version, bool) or not isinstance(version, int):
            raise CloudError("the report's version must be an integer")
        if status not in REPORT_STATUSES:
            raise CloudError(f"status must be one of {', '.join(REPORT_STATUSES)}")
        if reason is not None and not isinstance(reason, str):
            raise CloudError("reason must be a string")
        report = ArtifactReport(
            gateway_id,
            kind,
            name,
            version,
            status,
            (reason or None) and reason[:_MAX_REASON],
            _ms(),
        )
        await self.store.artifacts.add_report(report)
        log = _log.warning if status in ("refused", "failed") else _log.info
        log(
            "artifact %s by %s",
            status,
            gateway_id,
            extra={"kind": kind, "artifact": name, "version": version, "reason": report.reason},
        )
        return report

    async def reports(self) -> list[ArtifactReport]:
        """Every report, oldest first."""
        return await self.store.artifacts.reports()


def _ms() -> int:
    return int(time.time() * 1000)
