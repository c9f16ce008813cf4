"""Gateway identities (issue 14, items 6 and 7): a claim token made for a site cannot take
over a gateway id already registered (with a bearer token or a certificate), and the cloud's
own service names (the MQTT superuser ``ldt-cloud``) can never become a gateway."""

from __future__ import annotations

from pathlib import Path

import pytest

from ldt.cloud.gateways import InvalidGatewayIdError, add_gateway
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import PkiRefusedError, Provisioner
from ldt.cloud.store.sqlite import DB_FILENAME, SqliteStore
from tests.cloud.helpers import make_csr


async def test_a_site_claim_cannot_take_over_a_registered_gateway(tmp_path: Path) -> None:
    add_gateway(tmp_path, "gw-7")  # registered with a bearer token, never a certificate
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        pki = Provisioner(store, CertificateAuthority.open(tmp_path / "pki", passphrase=b""))
        token = await pki.create_claim("depot-7", 600)
        csr, _key = make_csr("gw-7")
        with pytest.raises(PkiRefusedError, match="already exists"):
            await pki.provision(token, csr)
        assert not await store.gateways.has_certificates("gw-7")
        # a token made for that gateway may replace it (an admin's deliberate act)
        bound = await pki.create_claim("depot-7", 600, "gw-7")
        issued = await pki.provision(bound, csr)
        assert issued.serial_hex


@pytest.mark.parametrize("name", ["ldt-cloud", "LDT-CLOUD", "mosquitto", "admin"])
async def test_service_names_are_never_gateways(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidGatewayIdError):
        add_gateway(tmp_path, name)
    async with SqliteStore(path=tmp_path / DB_FILENAME) as store:
        pki = Provisioner(store, CertificateAuthority.open(tmp_path / "pki", passphrase=b""))
        token = await pki.create_claim("depot-7", 600)
        csr, _key = make_csr(name)
        with pytest.raises(PkiRefusedError, match="invalid gateway id"):
            await pki.provision(token, csr)
        assert not await store.gateways.exists(name)
