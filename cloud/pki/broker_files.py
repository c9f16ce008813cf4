"""What the gateways' MQTT broker must refuse, written where mosquitto can read it.

mosquitto checks a gateway's client certificate against the CA and a CRL file, and its
topics against an ACL file; it never asks the cloud's store. Before these files, a revoked
gateway kept MQTT access until its certificate expired (7 days). The cloud now writes,
into one folder (``--mosquitto-dir``, default ``DATA/mosquitto``):

- ``crl.pem``: the CA's CRL of revoked certificates that have not expired. New
  connections with one of them fail the TLS handshake.
- ``ldt-gateways.acl``: the shipped ACL (``ACL_BASE``) plus a ``topic deny #`` for every
  revoked gateway. A session already open can then neither publish nor receive.

Both are written at start, whenever the revocations change (looked at every
``CHECK_S``, so a revocation made by the CLI or by another broker process on the same
database counts too), and the CRL is renewed daily. It stays valid for ``VALID_DAYS``: a
TLS server refuses every client once its CRL has expired, so a cloud that is down for a
while must not lock the whole fleet out. mosquitto 2 rereads both files on SIGHUP; the
systemd path unit in ``deploy/systemd/`` sends it when they change, so a revocation takes
effect within ``CHECK_S`` plus a second (``tests/security/test_mqtt_revocation.py``,
against a real mosquitto).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from pathlib import Path
from typing import Final

from ldt.cloud.errors import StoreError
from ldt.cloud.gateways import valid_gateway_id
from ldt.cloud.pki.ca import CertificateAuthority
from ldt.cloud.store.base import Store
from ldt.private_files import write_atomic

__all__ = ["ACL_BASE", "ACL_FILE", "CHECK_S", "CRL_FILE", "DIRNAME", "BrokerFiles", "acl_text"]

_log = logging.getLogger("ldt.cloud.pki.broker_files")

DIRNAME: Final = "mosquitto"
CRL_FILE: Final = "crl.pem"
ACL_FILE: Final = "ldt-gateways.acl"
CHECK_S: Final = 5.0
VALID_DAYS: Final = 30
RENEW_S: Final = 86_400.0

ACL_BASE: Final = """\
# Topic ACLs for ldt gateways (mosquitto acl_file). %u is the client certificate's CN,
# i.e. the gateway id: a gateway reads and writes its own subtree and nothing else.
# ldt cloud serve writes this file (with its revoked gateways below) into --mosquitto-dir;
# deploy/mosquitto/ldt-gateways.acl is the same text with none revoked.
pattern readwrite ldt/gw/%u/#

# The cloud side (a client certificate with CN ldt-cloud) sees every gateway.
user ldt-cloud
topic readwrite ldt/gw/#
"""


def acl_text(revoked: list[str]) -> str:
    """The ACL file with ``revoked`` gateways denied everything (ids that are not valid
    gateway ids are left out: nothing may add a line of its own to the file)."""
    lines = [f"\nuser {g}\ntopic deny #\n" for g in revoked if valid_gateway_id(g)]
    if not lines:
        return ACL_BASE
    return ACL_BASE + "\n# revoked gateways: no topic at all\n" + "".join(lines)


class BrokerFiles:
    """Keeps ``folder``'s CRL and ACL in step with the store's revocations."""

    def __init__(self, folder: Path, ca: CertificateAuthority, store: Store) -> None:
        self.folder = folder
        self._ca = ca
        self._store = store
        self._written: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        self._renew_at = 0.0

    async def refresh(self) -> bool:
        """Write the files if the revocations changed (or the CRL is due for renewal);
        True if they were written. Raises ``StoreError``."""
        now = dt.datetime.now(dt.UTC)
        certificates, gateways = await self._store.gateways.revocations(int(now.timestamp() * 1000))
        state = (tuple(c.serial for c in certificates), tuple(gateways))
        if state == self._written and time.monotonic() < self._renew_at:
            return False
        revoked = [
            (int(c.serial, 16), dt.datetime.fromtimestamp((c.revoked_at_ms or 0) / 1000, dt.UTC))
            for c in certificates
        ]
        crl = self._ca.revocation_list(revoked, valid_for=dt.timedelta(days=VALID_DAYS))
        self.folder.mkdir(parents=True, exist_ok=True)
        # the CRL first: a reload between the two finds the new CRL with the old ACL,
        # which refuses the revoked gateway's new connections already
        write_atomic(self.folder / CRL_FILE, crl, mode=0o644)
        write_atomic(self.folder / ACL_FILE, acl_text(gateways).encode(), mode=0o644)
        if state != self._written:
            _log.info(
                "mosquitto CRL and ACL written",
                extra={"certificates": len(certificates), "gateways": len(gateways)},
            )
        self._written = state
        self._renew_at = time.monotonic() + RENEW_S
        return True

    async def run(self, every_s: float = CHECK_S) -> None:
        """``refresh`` every ``every_s`` until cancelled (store errors are logged); the
        caller ran the first ``refresh`` itself (the files must exist before mosquitto
        starts)."""
        while True:
            await asyncio.sleep(every_s)
            try:
                await self.refresh()
            except (StoreError, OSError) as exc:
                _log.warning("mosquitto CRL and ACL not refreshed", extra={"error": str(exc)})
