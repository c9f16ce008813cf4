"""Fetching signed artifacts from the cloud: verify, refuse replays, report the outcome.

``ArtifactFetcher.fetch(kind, name)`` gets the latest version over mutual TLS, checks
it with the signing key pinned at provisioning (``ldt.contract.artifacts``) and against
the ledger of versions this gateway already accepted, then reports ``downloaded``, then
``verified`` or ``refused`` with the reason to the cloud, so an admin sees why a gateway
did not take an artifact. A refused artifact is never returned: what runs keeps running.

The ledger (``DATA/identity/artifacts.json``) is written atomically and only grows: a
signed but older version (a replay) is refused even after a restart.
"""

from __future__ import annotations

import base64
import binascii
import logging
from pathlib import Path
from typing import Any

import httpx
import orjson

from ldt.agent.identity import Identity, IdentityError, client_context
from ldt.contract.artifacts import Artifact, ArtifactError, verify_artifact
from ldt.private_files import write_private

__all__ = ["ArtifactFetcher", "ArtifactLedger"]

_log = logging.getLogger("ldt.agent.artifacts")


class ArtifactLedger:
    """Highest accepted version per (kind, name), in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, int]:
        try:
            data = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, orjson.JSONDecodeError) as exc:
            # refusing everything is safer than forgetting what was accepted
            raise ArtifactError(f"the artifact ledger {self.path} is unreadable: {exc}") from exc
        return {str(k): int(v) for k, v in data.items()}

    def current(self, kind: str, name: str) -> int:
        """The highest accepted version (0: none)."""
        return self._load().get(f"{kind}/{name}", 0)

    def accept(self, artifact: Artifact) -> None:
        """Record ``artifact`` as accepted; ``ArtifactError`` if it is not newer."""
        data = self._load()
        key = f"{artifact.kind}/{artifact.name}"
        running = data.get(key, 0)
        if artifact.version <= running:
            raise ArtifactError(
                f"version {artifact.version} is not newer than the accepted {running} (replay)"
            )
        data[key] = artifact.version
        write_private(self.path, orjson.dumps(data, option=orjson.OPT_SORT_KEYS))


class ArtifactFetcher:
    """Fetches artifacts for one provisioned gateway from ``base_url``."""

    def __init__(self, base_url: str, identity: Identity, *, timeout_s: float = 60) -> None:
        self.base_url = base_url.rstrip("/")
        self.identity = identity
        self.ledger = ArtifactLedger(identity.folder / "artifacts.json")
        self._timeout_s = timeout_s
        self.last_envelope: dict[str, Any] | None = None
        """The envelope of the last artifact ``fetch`` accepted (kept beside installed copies)."""

    async def fetch(self, kind: str, name: str) -> Artifact:
        """The latest version, verified and newer than the last accepted one.

        Raises ``ArtifactError`` (reported to the cloud first) if it is refused, and
        ``IdentityError`` if the cloud cannot be reached or has no such artifact.
        """
        try:
            async with httpx.AsyncClient(
                verify=client_context(self.identity), timeout=self._timeout_s
            ) as client:
                response = await client.get(f"{self.base_url}/ldt/v1/artifacts/{kind}/{name}")
                if response.status_code != 200:
                    raise IdentityError(
                        f"cannot fetch {kind} {name}: {response.status_code} {response.text[:200]}"
                    )
                await self._report(
                    client,
                    kind=kind,
                    name=name,
                    version=_version_of(response),
                    status="downloaded",
                    reason=None,
                )
                try:
                    artifact = self._check(response.json())
                except ArtifactError as exc:
                    version = _version_of(response)
                    await self._report(
                        client,
                        kind=kind,
                        name=name,
                        version=version,
                        status="refused",
                        reason=str(exc),
                    )
                    _log.error(
                        "artifact refused",
                        extra={
                            "kind": kind,
                            "artifact": name,
                            "version": version,
                            "reason": str(exc),
                        },
                    )
                    raise
                await self._report(
                    client,
                    kind=kind,
                    name=name,
                    version=artifact.version,
                    status="verified",
                    reason=None,
                )
                return artifact
        except httpx.HTTPError as exc:
            raise IdentityError(f"cannot reach {self.base_url}: {exc}") from exc

    async def report(
        self, kind: str, name: str, version: int, status: str, reason: str | None = None
    ) -> None:
        """Tell the cloud how an accepted artifact fared (``running``, ``failed``); never raises."""
        try:
            async with httpx.AsyncClient(
                verify=client_context(self.identity), timeout=self._timeout_s
            ) as client:
                await self._report(
                    client, kind=kind, name=name, version=version, status=status, reason=reason
                )
        except (httpx.HTTPError, OSError, IdentityError) as exc:
            _log.warning("artifact report not delivered", extra={"reason": str(exc)})

    def _check(self, body: Any) -> Artifact:
        if not isinstance(body, dict):
            raise ArtifactError("the cloud's answer is not an object")
        try:
            content = base64.b64decode(str(body.get("content", "")), validate=True)
        except (binascii.Error, ValueError):
            raise ArtifactError("the artifact content is not base64") from None
        envelope = body.get("envelope")
        artifact = verify_artifact(envelope, content, self.identity.signing_key())
        self.ledger.accept(artifact)
        self.last_envelope = envelope
        return artifact

    async def _report(
        self,
        client: httpx.AsyncClient,
        *,
        kind: str,
        name: str,
        version: int,
        status: str,
        reason: str | None,
    ) -> None:
        """Tell the cloud; a report that cannot be delivered is logged, never raised."""
        body = {"kind": kind, "name": name, "version": version, "status": status, "reason": reason}
        try:
            response = await client.post(
                f"{self.base_url}/ldt/v1/artifacts/reports",
                content=orjson.dumps(body),
                headers={"Content-Type": "application/json"},
            )
        except httpx.HTTPError as exc:
            _log.warning("artifact report not delivered", extra={"reason": str(exc)})
            return
        if response.status_code != 204:
            _log.warning("artifact report refused", extra={"status": response.status_code})


def _version_of(response: httpx.Response) -> int:
    try:
        version = response.json()["envelope"]["version"]
    except (ValueError, KeyError, TypeError):
        return 0
    return version if isinstance(version, int) and not isinstance(version, bool) else 0
