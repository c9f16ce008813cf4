"""Signed artifacts: the envelope's checks (shared code), and the cloud's service on both stores."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from ldt.cloud.errors import CloudError
from ldt.cloud.pki.artifacts import ArtifactService
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.store import Store
from ldt.contract.artifacts import ArtifactError, sign_artifact, verify_artifact

KEY = ed25519.Ed25519PrivateKey.generate()
CONTENT = b'{"rules": [{"when": "temperature > 30", "then": "fan on"}]}'


def test_a_signed_artifact_verifies() -> None:
    envelope = sign_artifact(KEY, "rules", "cooling", 3, CONTENT)
    got = verify_artifact(envelope, CONTENT, KEY.public_key())
    assert (got.kind, got.name, got.version, got.content) == ("rules", "cooling", 3, CONTENT)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"content": CONTENT.replace(b"30", b"99")}, "does not match its signed SHA-256"),
        ({"content": CONTENT + b" "}, "differs from the signed"),
        ({"version": 4}, "signature does not verify"),  # moved to another version
        ({"name": "heating"}, "signature does not verify"),  # moved to another artifact
        ({"key": ed25519.Ed25519PrivateKey.generate()}, "signature does not verify"),
        ({"signature": "not base64!"}, "signature does not verify"),
        ({"kind": "firmware"}, "unknown artifact kind"),
        ({"version": 0}, "invalid artifact version"),
        ({"drop": "sha256"}, "lacks 'sha256'"),
    ],
)
def test_tampered_moved_or_unsigned_artifacts_are_refused(
    change: dict[str, object], reason: str
) -> None:
    signer = change.get("key", KEY)
    assert isinstance(signer, ed25519.Ed25519PrivateKey)
    envelope = sign_artifact(signer, "rules", "cooling", 3, CONTENT)
    for field in ("version", "name", "signature", "kind"):
        if field in change:
            envelope[field] = change[field]
    if "drop" in change:
        del envelope[str(change["drop"])]
    content = change.get("content", CONTENT)
    assert isinstance(content, bytes)
    with pytest.raises(ArtifactError, match=reason):
        verify_artifact(envelope, content, KEY.public_key())


async def test_versions_only_grow_and_reports_are_checked(store: Store, tmp_path: Path) -> None:
    ca = CertificateAuthority.open(tmp_path / "pki", passphrase=b"")
    service = ArtifactService(store, ca)
    first = await service.publish("rules", "cooling", CONTENT)
    second = await service.publish("rules", "cooling", CONTENT + b"\n")
    assert (first["version"], second["version"]) == (1, 2)
    with pytest.raises(CloudError, match="rollback is a new version"):
        await service.publish("rules", "cooling", CONTENT, version=2)
    assert (await service.publish("rules", "cooling", CONTENT, version=7))["version"] == 7
    latest = await service.latest("rules", "cooling")
    assert latest is not None
    envelope, content = latest
    assert envelope["version"] == 7
    assert verify_artifact(envelope, content, ca.signing_key.public_key()).content == CONTENT
    assert await service.latest("rules", "nothing") is None
    await service.report(
        "gw-1",
        {
            "kind": "rules",
            "name": "cooling",
            "version": 7,
            "status": "refused",
            "reason": "x" * 5000,
        },
    )
    bad: object
    for bad in (
        [],
        {"kind": "firmware", "name": "x", "version": 1, "status": "verified"},
        {"kind": "rules", "name": "x", "version": "1", "status": "verified"},
        {"kind": "rules", "name": "x", "version": 1, "status": "maybe"},
    ):
        with pytest.raises(CloudError):
            await service.report("gw-1", bad)
    (report,) = await service.reports()
    assert (report.gateway_id, report.status, len(report.reason or "")) == ("gw-1", "refused", 1000)


def test_the_signing_key_survives_a_restart_and_is_encrypted_with_the_ca(tmp_path: Path) -> None:
    ca = CertificateAuthority.open(tmp_path, passphrase=b"pass phrase")
    assert b"ENCRYPTED" in (tmp_path / "signing.key").read_bytes()
    assert (tmp_path / "signing.key").stat().st_mode & 0o777 == 0o600
    again = CertificateAuthority.open(tmp_path, passphrase=b"pass phrase")
    assert again.signing_public_pem == ca.signing_public_pem
