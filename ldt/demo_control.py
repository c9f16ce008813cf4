"""The demo's edge control: a provisioned gateway, the project's model and a rule set.

What an admin and a technician do by hand (``ldt cloud users add``, ``ldt cloud token
create``, ``ldt gw provision``, ``ldt cloud models|rules upload/assign``), done in process
so the demo shows on its own forecasts with their provenance, a rule driving the pumping
station and raising an ``Alert``, and commands through the NGSI-LD API.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from ldt.cloud.server import CloudHandle

__all__ = ["DEMO_RULES", "DemoUsers", "demo_users", "provision_gateway", "publish_edge_control"]

DEMO_RULES: Final = """
name = "lift-station"
description = "keep the wet well low: pump 1 to full speed above 2.2 m"

[[limits]]
device = "station-1"
point = "pump1_speed_setpoint"
min = 0
max = 100

[[limits]]
device = "relay-1"
point = "relay1"
max_changes_per_hour = 120

[[rules]]
id = "well-high"
when = { device = "station-1", point = "inlet_level", above = 2.2, hysteresis = 0.2 }
then = { device = "station-1", point = "pump1_speed_setpoint", value = 100.0 }
otherwise = { device = "station-1", point = "pump1_speed_setpoint", value = 75.0 }
alert = { severity = "medium", category = "environment", sub_category = "wetWellLevel", \
description = "wet well above 2.2 m: pump 1 to full speed" }

[[rules]]
id = "well-lamp"
when = { device = "station-1", point = "inlet_level", above = 2.2, hysteresis = 0.2 }
then = { device = "relay-1", point = "relay1", value = true }
otherwise = { device = "relay-1", point = "relay1", value = false }
"""


async def provision_gateway(cloud: CloudHandle, agent_data: Path, gateway_id: str) -> None:
    """A claim token, redeemed by the gateway's identity in ``agent_data`` (mutual TLS)."""
    from ldt.agent.identity import Identity, provision
    from ldt.cloud.pki.ca import CertificateAuthority
    from ldt.cloud.pki.registry import Provisioner
    from ldt.cloud.server import PKI_DIRNAME

    ca = CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME)
    token = await Provisioner(cloud.store, ca).create_claim("demo", 600, gateway_id)
    await provision(cloud.url, token, Identity.of(agent_data, gateway_id))


async def publish_edge_control(cloud: CloudHandle, gateway_id: str, meter: str) -> None:
    """Upload and assign the forecaster (reading ``meter``) and the demo's rule set."""
    from ldt.cloud.control.audit import AuditLog
    from ldt.cloud.control.catalogue import Catalogue
    from ldt.cloud.pki.artifacts import ArtifactService
    from ldt.cloud.pki.ca import CertificateAuthority
    from ldt.cloud.server import PKI_DIRNAME
    from ldt.models.bundle import pack_bundle, read_bundle
    from ldt.models.forecaster import build_bundle

    bundle = read_bundle(build_bundle(seed=1, version="1.0.0"))
    manifest = bundle.manifest.model_copy(
        update={
            "inputs": [i.model_copy(update={"device": meter}) for i in bundle.manifest.inputs],
            "outputs": [o.model_copy(update={"device": meter}) for o in bundle.manifest.outputs],
        }
    )
    ca = CertificateAuthority.open(cloud.data_dir / PKI_DIRNAME)
    catalogue = Catalogue(cloud.store, ArtifactService(cloud.store, ca), AuditLog(cloud.store))
    target = f"gateway:{gateway_id}"
    model = await catalogue.upload("model", pack_bundle(manifest, bundle.tflite))
    await catalogue.assign("model", model.name, target)
    rules = await catalogue.upload("rules", DEMO_RULES.encode())
    await catalogue.assign("rules", rules.name, target)


@dataclass(frozen=True, slots=True)
class DemoUsers:
    """The demo's people (name, role, password), and a viewer token for its status lines."""

    people: tuple[tuple[str, str, str], ...]
    status_token: str
    file: Path

    def password(self, name: str) -> str:
        """The password of ``name``."""
        return next(p for n, _, p in self.people if n == name)


DEMO_PEOPLE: Final = (("admin", "admin"), ("operator", "operator"), ("viewer", "viewer"))
"""Name and role; ``admin`` is the global admin (every tenant)."""


async def demo_users(cloud: CloudHandle) -> DemoUsers:
    """An admin, an operator and a viewer with generated passwords (kept, 0600, in
    ``DATA/cloud/demo-users.json`` so a restarted demo shows the same ones), as an admin
    would make them with ``ldt cloud users add``."""
    import orjson

    from ldt.cloud.access.service import AccessService
    from ldt.cloud.access.tokens import TokenSigner
    from ldt.cloud.server import PKI_DIRNAME
    from ldt.private_files import write_private

    service = AccessService(cloud.store, TokenSigner.open(cloud.data_dir / PKI_DIRNAME))
    file = cloud.data_dir / "demo-users.json"
    known: dict[str, str] = orjson.loads(file.read_bytes()) if file.exists() else {}
    people = []
    for name, role in DEMO_PEOPLE:
        if name not in known:
            tenant = "*" if role == "admin" else ""
            generated = await service.add_user(name, role, tenant)
            assert generated is not None
            known[name] = generated
        people.append((name, role, known[name]))
    if "demo-status" not in known:
        await service.add_client("demo-status", "viewer")
        known["demo-status"], _ = await service.client_token("demo-status")
    write_private(file, orjson.dumps(known, option=orjson.OPT_INDENT_2))
    return DemoUsers(tuple(people), known["demo-status"], file)
