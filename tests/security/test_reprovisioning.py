"""Re-provisioning keeps the old identity until the new one has synced once (issue 14,
item 5): a forced re-provisioning with a token of another cloud, or a wrong host, used to
replace the pinned CA, the key and the certificate at once and cut the gateway off from
its real cloud. Now the new identity waits beside the current one; batches go with the
current one until a batch goes through with the new one, which is then promoted.

Two real TLS clouds, each with its own CA; the gateway's transport is the agent's own.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ldt.agent.identity import Identity, IdentityError, provision, reprovision
from ldt.agent.transport import MutualTlsTransport
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.pki.registry import Provisioner
from ldt.cloud.server import PKI_DIRNAME, CloudHandle, running_cloud
from tests.cloud.batches import batch, encode, good_rows

GW = "gw-re"


def _pending_error(transport: MutualTlsTransport) -> str | None:
    return transport.pending_error  # read afresh (mypy keeps a narrowed attribute)


def _pki(cloud: CloudHandle) -> Provisioner:
    return Provisioner(cloud.store, CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME))


async def test_a_wrong_reprovisioning_never_cuts_the_gateway_off(tmp_path: Path) -> None:
    async with (
        running_cloud(tmp_path / "a", tls_hosts=["127.0.0.1"], insecure_no_auth=True) as real,
        running_cloud(tmp_path / "b", tls_hosts=["127.0.0.1"], insecure_no_auth=True) as other,
    ):
        identity = Identity(tmp_path / "agent" / "identity", GW)
        await provision(real.url, await _pki(real).create_claim("depot", 600), identity)
        first_ca = identity.ca_path.read_bytes()
        transport = MutualTlsTransport(base_url=real.url, identity=identity, timeout_s=10)
        transport.PENDING_RETRY_S = 0.0  # try the pending identity at every batch
        try:
            assert (await transport.send(encode(batch(GW, good_rows(1, 5))))).accepted == 5

            # a token of another cloud (forced re-provisioning): the real cloud's server
            # certificate does not verify against the new CA, so the current identity sends
            await reprovision(other.url, await _pki(other).create_claim("depot", 600), identity)
            assert identity.pending().provisioned
            assert (await transport.send(encode(batch(GW, good_rows(6, 5))))).accepted == 5
            assert _pending_error(transport) is not None
            assert identity.ca_path.read_bytes() == first_ca  # still the real cloud's CA
            assert identity.pending().provisioned  # kept: it may yet work, or be replaced

            # the right token: the next batch goes with the new identity, which takes over
            token = await _pki(real).create_claim("depot", 600, GW)
            await reprovision(real.url, token, identity)
            new_serial = identity.pending().certificate().serial_number
            assert (await transport.send(encode(batch(GW, good_rows(11, 5))))).accepted == 5
            assert not identity.pending().folder.exists()
            assert identity.certificate().serial_number == new_serial
            assert identity.previous().provisioned  # the old one, one generation back
            assert _pending_error(transport) is None
            assert (await transport.send(encode(batch(GW, good_rows(16, 5))))).accepted == 5
        finally:
            await transport.aclose()
        assert await real.store.readings.count(GW) == 20
        assert await other.store.readings.count(GW) == 0


def test_a_promotion_cut_by_a_power_failure_is_finished(tmp_path: Path) -> None:
    identity = Identity(tmp_path / "identity", GW)
    for one in (identity, identity.pending()):
        one.folder.mkdir(parents=True)
        (one.folder / "cert.pem").write_text(one.folder.name)
    identity.folder.rename(identity.previous().folder)  # the first rename of promote()
    identity.recover()
    assert (identity.folder / "cert.pem").read_text() == "identity.pending"
    assert not identity.pending().folder.exists()
    with pytest.raises(IdentityError, match="no pending identity"):
        identity.promote()
