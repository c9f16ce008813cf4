"""The catalogue of models and rule sets: upload, validate, assign, roll out, roll back.

An upload is validated before anything is stored (a model bundle is opened and loaded into
the TFLite interpreter and its tensors checked against the manifest; a rule set is parsed
and checked), then published as the next signed version of the artifact named after it
(``ArtifactService``). Gateways are assigned by id or through a group, and always get the
newest version; per gateway, the rollout status is its newest report on that version:

- ``pending``: assigned, not reported yet (offline, or not fetched yet);
- ``downloaded`` / ``verified`` / ``running``: on its way, then in service;
- ``failed`` / ``refused``: with the gateway's reason (its previous version keeps running).

A rollback republishes the previous version's content as a new version (gateways refuse
older versions, see ``ldt.contract.artifacts``); the catalogue records which one it is.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any, Final

from ldt.cloud.control.audit import AuditLog
from ldt.cloud.errors import CloudError
from ldt.cloud.pki.artifacts import ArtifactService
from ldt.cloud.store.base import Store
from ldt.cloud.store.control import CatalogueEntry

__all__ = ["CATALOGUE_KINDS", "Catalogue", "CatalogueEntry", "RolloutStatus", "target_of"]

CATALOGUE_KINDS: Final = ("model", "rules")


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """Where one gateway is with one artifact."""

    gateway_id: str
    version: int
    status: str
    reason: str | None
    at_ms: int | None


def target_of(gateway: str | None, group: str | None) -> str:
    """The assignment target for ``--gateway`` or ``--group`` (exactly one)."""
    if (gateway is None) == (group is None):
        raise CloudError("assign to a gateway or to a group (one of them)")
    name = gateway if gateway is not None else group
    if not name or len(name) > 256 or any(c.isspace() for c in name):
        raise CloudError(f"invalid gateway or group name {name!r}")
    return f"gateway:{gateway}" if gateway is not None else f"group:{group}"


def validate_model(content: bytes) -> tuple[str, str, dict[str, Any]]:
    """A model bundle's (name, version label, metadata); ``CloudError`` if it is refused."""
    from ldt.models.bundle import read_bundle
    from ldt.models.interpreter import LoadedModel
    from ldt.models.manifest import ModelError

    try:
        bundle = read_bundle(content)
        model = LoadedModel.load(bundle)  # the tensors must match the manifest
        model.close()
    except ModelError as exc:
        raise CloudError(f"model bundle refused: {exc}") from None
    manifest = bundle.manifest
    metadata = {
        "license": manifest.license,
        "description": manifest.description,
        "inputs": [i.model_dump() for i in manifest.inputs],
        "outputs": [o.model_dump() for o in manifest.outputs],
        "sha256": bundle.sha256,
        "model_bytes": len(bundle.tflite),
    }
    return manifest.name, manifest.version, metadata


def validate_rules(content: bytes) -> tuple[str, str, dict[str, Any], bytes]:
    """A rule set's (name, label, metadata, canonical JSON); ``CloudError`` if refused."""
    from ldt.contract.rules import RuleError, dump_ruleset, parse_ruleset

    try:
        ruleset = parse_ruleset(content)
    except RuleError as exc:
        raise CloudError(f"rule set refused: {exc}") from None
    canonical = dump_ruleset(ruleset)
    digest = hashlib.sha256(canonical).hexdigest()
    metadata = {
        "description": ruleset.description,
        "rules": [r.id for r in ruleset.rules],
        "limits": [f"{lim.device}/{lim.point}" for lim in ruleset.limits],
        "sha256": digest,
    }
    return ruleset.name, digest[:12], metadata, canonical


class Catalogue:
    """Models and rule sets in the store, published through ``ArtifactService``."""

    def __init__(self, store: Store, artifacts: ArtifactService, audit: AuditLog) -> None:
        self.store = store
        self.artifacts = artifacts
        self.audit = audit

    async def upload(self, kind: str, content: bytes) -> CatalogueEntry:
        """Validate and publish ``content`` as the next version of the artifact it names."""
        if kind == "model":
            name, label, metadata = validate_model(content)
            payload = content
        elif kind == "rules":
            name, label, metadata, payload = validate_rules(content)
        else:
            raise CloudError(f"unknown catalogue kind {kind!r} (model or rules)")
        return await self._publish(kind, name, label, metadata, payload, rollback_of=None)

    async def _publish(
        self,
        kind: str,
        name: str,
        label: str,
        metadata: dict[str, Any],
        payload: bytes,
        *,
        rollback_of: int | None,
    ) -> CatalogueEntry:
        envelope = await self.artifacts.publish(kind, name, payload)
        entry = CatalogueEntry(
            kind, name, int(envelope["version"]), label, metadata, rollback_of, _ms()
        )
        await self.store.control.add_catalogue(entry)
        action = "rollback" if rollback_of is not None else "publish"
        await self.audit.record(
            f"{kind}.{action}",
            name,
            {"version": entry.version, "label": label, "rollback_of": rollback_of},
        )
        return entry

    async def entries(self, kind: str, name: str | None = None) -> list[CatalogueEntry]:
        """Every published version of ``kind`` (of ``name`` only, if given), oldest first."""
        return await self.store.control.catalogue(kind, name)

    async def rollback(self, kind: str, name: str) -> CatalogueEntry:
        """Publish the version before the current one again, as the newest version."""
        versions = await self.entries(kind, name)
        if not versions:
            raise CloudError(f"no {kind} named {name} in the catalogue")
        current = versions[-1]
        source = current.rollback_of or current.version
        originals = [e for e in versions if e.rollback_of is None and e.version < source]
        if not originals:
            raise CloudError(
                f"{kind} {name} version {source} is its first: there is nothing to roll back to"
            )
        previous = originals[-1]
        content = await self.store.artifacts.content(kind, name, previous.version)
        if content is None:
            raise CloudError(f"the content of {kind} {name} version {previous.version} is gone")
        return await self._publish(
            kind, name, previous.label, previous.metadata, content, rollback_of=previous.version
        )

    async def assign(self, kind: str, name: str, target: str) -> None:
        """Have ``target`` (``gateway:ID`` or ``group:NAME``) run the newest version."""
        if not await self.entries(kind, name):
            raise CloudError(f"no {kind} named {name} in the catalogue: upload it first")
        await self.store.control.assign(kind, name, target, at_ms=_ms())
        await self.audit.record(f"{kind}.assign", name, {"target": target})

    async def unassign(self, kind: str, name: str, target: str) -> None:
        """Stop assigning; the gateways keep what they run until told otherwise."""
        if not await self.store.control.unassign(kind, name, target):
            raise CloudError(f"{kind} {name} is not assigned to {target}")
        await self.audit.record(f"{kind}.unassign", name, {"target": target})

    async def gateways(self, kind: str, name: str) -> list[str]:
        """The gateways ``name`` is assigned to, directly or through their groups."""
        found: set[str] = set()
        for target in await self.store.control.assignment_targets(kind, name):
            scope, _, ident = target.partition(":")
            if scope == "gateway":
                found.add(ident)
            else:
                found.update(await self.store.control.group_members(ident))
        return sorted(found)

    async def rollout(self, kind: str, name: str) -> list[RolloutStatus]:
        """Per assigned gateway: its status on the newest version."""
        newest = await self.store.artifacts.latest_version(kind, name)
        if newest is None:  # else what gateways are handed (``assigned_to``)
            raise CloudError(f"no {kind} named {name} in the catalogue")
        out: list[RolloutStatus] = []
        for gateway_id in await self.gateways(kind, name):
            report = await self.store.artifacts.last_report(gateway_id, kind, name, newest)
            if report is not None:
                out.append(
                    RolloutStatus(gateway_id, newest, report.status, report.reason, report.at_ms)
                )
            else:
                out.append(RolloutStatus(gateway_id, newest, "pending", None, None))
        return out

    async def group_add(self, group: str, gateway_ids: list[str]) -> None:
        """Put gateways in a group (created by its first member)."""
        target_of(None, group)
        for gateway_id in gateway_ids:
            target_of(gateway_id, None)
        await self.store.control.add_to_group(group, gateway_ids)
        await self.audit.record("group.add", group, {"gateways": gateway_ids})

    async def group_remove(self, group: str, gateway_id: str) -> None:
        """Take a gateway out of a group."""
        if not await self.store.control.remove_from_group(group, gateway_id):
            raise CloudError(f"{gateway_id} is not in group {group}")
        await self.audit.record("group.remove", group, {"gateway": gateway_id})

    async def groups(self) -> dict[str, list[str]]:
        """Every group and its members."""
        return await self.store.control.groups()


def _ms() -> int:
    return int(time.time() * 1000)
