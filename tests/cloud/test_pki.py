"""The cloud's CA and provisioning rules, on both stores (no network: the registry directly)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ldt.cloud.errors import CloudError
from ldt.cloud.pki.ca import CertificateAuthority, CsrError, check_csr
from ldt.cloud.pki.registry import PkiRefusedError, Provisioner
from ldt.cloud.store import Store
from ldt.cloud.store.gateways import CertificateRecord
from ldt.contract.claims import ClaimTokenError, new_claim_token, parse_claim_token
from tests.cloud.helpers import make_csr as _csr

# --- the CA ------------------------------------------------------------------------------


def test_ca_is_created_once_with_a_private_key_file(tmp_path: Path) -> None:
    ca = CertificateAuthority.open(tmp_path / "pki", passphrase=b"")
    assert (tmp_path / "pki" / "ca.key").stat().st_mode & 0o777 == 0o600
    again = CertificateAuthority.open(tmp_path / "pki", passphrase=b"")
    assert again.fingerprint == ca.fingerprint
    basic = ca.certificate.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert basic.ca
    assert basic.path_length == 0


def test_encrypted_ca_key_needs_its_passphrase(tmp_path: Path) -> None:
    CertificateAuthority.open(tmp_path, passphrase=b"correct horse")
    assert b"ENCRYPTED" in (tmp_path / "ca.key").read_bytes()
    with pytest.raises(CloudError, match="cannot load the CA"):
        CertificateAuthority.open(tmp_path, passphrase=b"wrong")
    assert CertificateAuthority.open(tmp_path, passphrase=b"correct horse").pem


def test_a_readable_ca_key_is_refused(tmp_path: Path) -> None:
    CertificateAuthority.open(tmp_path, passphrase=b"")
    os.chmod(tmp_path / "ca.key", 0o644)
    with pytest.raises(CloudError, match="readable by others"):
        CertificateAuthority.open(tmp_path, passphrase=b"")


def test_gateway_certificate_names_the_gateway_and_is_short_lived(tmp_path: Path) -> None:
    ca = CertificateAuthority.open(tmp_path, passphrase=b"")
    csr, key = _csr("gw-7")
    issued = ca.issue_gateway(csr, "gw-7")
    cert = x509.load_pem_x509_certificate(issued.pem)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "gw-7"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["urn:ldt:gateway:gw-7"]
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert life.days <= 7
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    assert cert.public_key().public_bytes(der, spki) == key.public_key().public_bytes(der, spki)
    cert.verify_directly_issued_by(ca.certificate)


@pytest.mark.parametrize(
    ("csr", "reason"),
    [
        (b"not a csr", "not a PEM certificate request"),
        (_csr("gw-other")[0], "this claim is for gateway gw-7"),
        (_csr("gw-7", ec.SECP384R1())[0], "use P-256"),
    ],
)
def test_bad_csrs_are_refused(csr: bytes, reason: str) -> None:
    with pytest.raises(CsrError, match=reason):
        check_csr(csr, "gw-7")


def test_a_csr_whose_signature_does_not_verify_is_refused() -> None:
    good, _ = _csr("gw-7")
    der = bytearray(x509.load_pem_x509_csr(good).public_bytes(serialization.Encoding.DER))
    der[-3] ^= 0x01  # inside the signature
    tampered = x509.load_der_x509_csr(bytes(der)).public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrError, match="signature"):
        check_csr(tampered, "gw-7")


def test_server_certificate_is_reused_until_its_names_change(tmp_path: Path) -> None:
    ca = CertificateAuthority.open(tmp_path, passphrase=b"")
    cert, key = ca.server_certificate(["127.0.0.1", "localhost"])
    first = cert.read_bytes()
    assert key.stat().st_mode & 0o777 == 0o600
    assert ca.server_certificate(["localhost", "127.0.0.1"])[0].read_bytes() == first
    assert ca.server_certificate(["twin.example.org"])[0].read_bytes() != first


# --- claim tokens ------------------------------------------------------------------------


def test_claim_token_round_trip_and_malformed_tokens() -> None:
    text, token = new_claim_token(b"\x01" * 32)
    assert parse_claim_token(text) == token
    assert text.startswith("ldt1.")
    for bad in ("", "ldt1.abc.def", text[:-1], text.replace("ldt1", "ldt2"), text + "x"):
        with pytest.raises(ClaimTokenError):
            parse_claim_token(bad)


# --- the provisioning rules, on both stores ----------------------------------------------


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority.open(tmp_path / "pki", passphrase=b"")


async def test_a_token_certifies_one_gateway_once(store: Store, ca: CertificateAuthority) -> None:
    pki = Provisioner(store, ca)
    token = await pki.create_claim("depot-7", 600)
    issued = await pki.provision(token, _csr("gw-1")[0])
    cert_pem = issued.pem.decode()
    assert await pki.authenticate(cert_pem) == ("gw-1", "depot-7")
    with pytest.raises(PkiRefusedError, match="already used") as again:
        await pki.provision(token, _csr("gw-2")[0])
    assert again.value.status == 403
    assert [g.id for g in await store.gateways.all()] == ["gw-1"]


async def test_expired_unknown_and_foreign_tokens_are_refused(
    store: Store, ca: CertificateAuthority, tmp_path: Path
) -> None:
    pki = Provisioner(store, ca)
    expired = await pki.create_claim("depot-7", 0.001)
    await asyncio.sleep(0.01)  # past its millisecond of life, on a fast machine too
    with pytest.raises(PkiRefusedError, match="expired"):
        await pki.provision(expired, _csr("gw-1")[0])
    unknown, _ = new_claim_token(ca.fingerprint)
    with pytest.raises(PkiRefusedError, match="unknown claim token"):
        await pki.provision(unknown, _csr("gw-1")[0])
    other_ca = CertificateAuthority.open(tmp_path / "other", passphrase=b"")
    foreign = await Provisioner(store, other_ca).create_claim("depot-7", 600)
    with pytest.raises(PkiRefusedError, match="another cloud"):
        await pki.provision(foreign, _csr("gw-1")[0])
    with pytest.raises(PkiRefusedError, match="not an ldt claim token") as bad:
        await pki.provision("garbage", _csr("gw-1")[0])
    assert bad.value.status == 400
    assert await pki.certificates() == []


async def test_a_bound_token_refuses_a_csr_for_another_gateway_without_being_spent(
    store: Store, ca: CertificateAuthority
) -> None:
    pki = Provisioner(store, ca)
    token = await pki.create_claim("depot-7", 600, gateway_id="gw-1")
    with pytest.raises(PkiRefusedError, match="for gateway gw-1, the CSR names gw-evil"):
        await pki.provision(token, _csr("gw-evil")[0])
    with pytest.raises(PkiRefusedError, match=r"signature|PEM"):
        await pki.provision(token, b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n")
    assert (await pki.provision(token, _csr("gw-1")[0])).serial_hex


async def test_an_unbound_token_cannot_take_over_an_existing_gateway(
    store: Store, ca: CertificateAuthority
) -> None:
    pki = Provisioner(store, ca)
    await pki.provision(await pki.create_claim("depot-7", 600), _csr("gw-1")[0])
    stolen_site_token = await pki.create_claim("depot-7", 600)
    with pytest.raises(PkiRefusedError, match="already exists"):
        await pki.provision(stolen_site_token, _csr("gw-1")[0])
    replacement = await pki.create_claim("depot-7", 600, gateway_id="gw-1")
    issued = await pki.provision(replacement, _csr("gw-1")[0])
    assert await pki.authenticate(issued.pem.decode()) == ("gw-1", "depot-7")


async def test_revocation_is_immediate_and_kills_every_certificate(
    store: Store, ca: CertificateAuthority
) -> None:
    pki = Provisioner(store, ca)
    first = await pki.provision(await pki.create_claim("s", 600), _csr("gw-1")[0])
    renewed = await pki.renew("gw-1", "s", _csr("gw-1")[0])
    assert renewed.serial_hex != first.serial_hex
    assert await pki.revoke("gw-1") == 2
    for cert in (first, renewed):
        with pytest.raises(PkiRefusedError, match="revoked") as refused:
            await pki.authenticate(cert.pem.decode())
        assert refused.value.status == 401
    assert await store.gateways.for_token(b"\x00" * 32) is None
    with pytest.raises(CloudError, match="no gateway gw-ghost"):
        await pki.revoke("gw-ghost")
    assert "gw-ghost" not in {g.id for g in await store.gateways.all()}


async def test_certificates_not_on_record_or_expired_are_refused(
    store: Store, ca: CertificateAuthority, tmp_path: Path
) -> None:
    pki = Provisioner(store, ca)
    stray = ca.issue_gateway(_csr("gw-1")[0], "gw-1")  # signed by our CA, never recorded
    with pytest.raises(PkiRefusedError, match="not issued by this cloud"):
        await pki.authenticate(stray.pem.decode())
    await pki.provision(await pki.create_claim("s", 600), _csr("gw-2")[0])
    expired = ca.issue_gateway(_csr("gw-3")[0], "gw-3", days=-0.001)  # ended 86 s ago
    not_after_ms = int(expired.not_after.timestamp() * 1000)
    await store.gateways.add_certificate(
        CertificateRecord(expired.serial_hex, "gw-3", "s", 0, not_after_ms)
    )
    with pytest.raises(PkiRefusedError, match="has expired"):
        await pki.authenticate(expired.pem.decode())
    with pytest.raises(PkiRefusedError):
        await pki.authenticate("not a certificate")
    renewal_csr, _ = _csr("gw-9")
    with pytest.raises(PkiRefusedError, match="this claim is for gateway gw-2"):
        await pki.renew("gw-2", "s", renewal_csr)
