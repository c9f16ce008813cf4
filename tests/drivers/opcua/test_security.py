"""Basic256Sha256 with client certificates and user passwords against a secure simulator."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from ldt.backoff import Backoff
from ldt.drivers.errors import DriverError
from ldt.drivers.opcua import OpcUaConnection, OpcUaDevice, OpcUaPoint, OpcUaProfileSettings
from ldt.drivers.opcua.config import PointMode
from ldt.reading import Quality
from ldt.simulators.opcua import OpcUaSimulator
from tests.drivers.opcua.conftest import PASSWORD, USER, ClientFiles

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

POINTS = [
    OpcUaPoint(name="level", node="/Objects/2:PumpingStation/2:InletLevel", mode=PointMode.POLL),
    OpcUaPoint(
        name="setpoint",
        node="ns=2;s=PumpingStation.OutletPressureSetpoint",
        mode=PointMode.POLL,
        writable=True,
    ),
]


def secure_device(sim: OpcUaSimulator, files: ClientFiles, **conn: object) -> OpcUaDevice:
    settings: dict[str, object] = {
        "endpoint": sim.endpoint,
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "client_certificate": files.cert,
        "client_private_key": files.key,
        "username": USER,
        "password": PASSWORD,
        "timeout_s": 2.0,
    }
    settings.update(conn)
    return OpcUaDevice(
        device_id="secure-station",
        connection=OpcUaConnection.model_validate(settings),
        settings=OpcUaProfileSettings(),
        points=POINTS,
        backoff=Backoff(base_s=0.2, cap_s=1.0),
    )


async def test_sign_and_encrypt_with_a_trusted_certificate_and_password_file(
    secure_sim: OpcUaSimulator,
    pki: dict[str, ClientFiles],
    password_file: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    assert secure_sim.server_cert_dir is not None
    pinned = secure_sim.server_cert_dir / "server_cert.der"
    async with secure_device(
        secure_sim,
        pki["trusted"],
        password=None,
        password_file=password_file,
        server_certificate=pinned,
    ) as d:
        level, setpoint = await d.read()
        assert level.quality is Quality.GOOD, level.reason
        assert setpoint.value == secure_sim.expected("PumpingStation.OutletPressureSetpoint")
        await d.write("setpoint", 4.2)
    assert secure_sim.written[-1] == ("PumpingStation.OutletPressureSetpoint", 4.2)


async def test_sign_mode_works_too(secure_sim: OpcUaSimulator, pki: dict[str, ClientFiles]) -> None:
    async with secure_device(secure_sim, pki["trusted"], security_mode="Sign") as d:
        assert all(r.quality is Quality.GOOD for r in await d.read())


async def test_an_untrusted_certificate_is_refused_with_a_reason(
    secure_sim: OpcUaSimulator, pki: dict[str, ClientFiles]
) -> None:
    async with secure_device(secure_sim, pki["stranger"]) as d:
        start = time.monotonic()
        readings = await d.read()
        assert time.monotonic() - start < 3
        with pytest.raises(DriverError, match="BadCertificateUntrusted"):
            await d.write("setpoint", 1.0)
    assert all(r.quality is Quality.BAD for r in readings)
    assert readings[0].reason is not None
    assert "BadCertificateUntrusted" in readings[0].reason
    assert d.health.last_error is not None
    assert "BadCertificateUntrusted" in d.health.last_error


async def test_a_wrong_password_is_refused_with_a_reason(
    secure_sim: OpcUaSimulator, pki: dict[str, ClientFiles]
) -> None:
    async with secure_device(secure_sim, pki["trusted"], password="wrong") as d:
        readings = await d.read()
    assert readings[0].quality is Quality.BAD
    assert readings[0].reason is not None
    assert "BadUserAccessDenied" in readings[0].reason


async def test_a_wrong_pinned_server_certificate_is_refused(
    secure_sim: OpcUaSimulator, pki: dict[str, ClientFiles]
) -> None:
    async with secure_device(
        secure_sim, pki["trusted"], server_certificate=pki["stranger"].cert
    ) as d:
        start = time.monotonic()
        readings = await d.read()
        assert time.monotonic() - start < 2
    assert readings[0].quality is Quality.BAD
    assert readings[0].reason is not None
    assert "certificate other than the pinned" in readings[0].reason


async def test_no_security_is_refused_by_a_secure_server(secure_sim: OpcUaSimulator) -> None:
    conn = OpcUaConnection(endpoint=secure_sim.endpoint, timeout_s=2.0)
    async with OpcUaDevice(
        device_id="plain", connection=conn, settings=OpcUaProfileSettings(), points=POINTS
    ) as d:
        readings = await d.read()
    assert readings[0].quality is Quality.BAD
    assert readings[0].reason


async def test_an_unreadable_key_file_is_a_clear_reason(
    secure_sim: OpcUaSimulator, pki: dict[str, ClientFiles], tmp_path: Path
) -> None:
    files = ClientFiles(cert=pki["trusted"].cert, key=tmp_path / "missing-key.pem")
    async with secure_device(secure_sim, files) as d:
        readings = await d.read()
    assert readings[0].reason is not None
    assert "cannot read the client private key" in readings[0].reason
