"""The single admin token of earlier versions becomes a revocable service account.

Before users and roles, the admin API took one bearer token, written to
``DATA/pki/admin-token`` at the first TLS start. Scripts still holding it keep working:
at start, its hash becomes a service token of the service account ``admin-token`` with the
global admin role, once. Revoke it (``ldt cloud clients disable admin-token``) when
nothing uses it any more. The file is renamed ``admin-token.migrated``.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Final

from ldt.cloud.access import passwords
from ldt.cloud.access.roles import ALL_TENANTS, Role
from ldt.cloud.access.service import AccessService
from ldt.cloud.access.tokens import token_hash
from ldt.cloud.store.access import CLIENT

__all__ = ["LEGACY_CLIENT", "LEGACY_TOKEN_FILE", "migrate_admin_token"]

_log = logging.getLogger("ldt.cloud.access")

LEGACY_TOKEN_FILE: Final = "admin-token"  # noqa: S105 - a file name, not a secret
LEGACY_CLIENT: Final = "admin-token"


async def migrate_admin_token(service: AccessService, pki_dir: Path) -> bool:
    """Adopt ``pki_dir/admin-token`` if it is there; whether it was."""
    path = pki_dir / LEGACY_TOKEN_FILE
    try:
        token = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return False
    store = service.store.access
    if token and await store.token(token_hash(token)) is None:
        if await store.principal(CLIENT, LEGACY_CLIENT) is None:
            secret = await passwords.hash_secret(passwords.generate_secret(32))
            await store.add_principal(CLIENT, LEGACY_CLIENT, secret)
            await service.grant(f"client:{LEGACY_CLIENT}", Role.ADMIN.value, ALL_TENANTS)
        await store.add_token(
            token_hash(token), uuid.uuid4().hex, "service", f"client:{LEGACY_CLIENT}", None
        )
        _log.warning(
            "the old admin token is now a service token of the global admin"
            f" {LEGACY_CLIENT!r}: disable it once nothing uses it"
        )
    path.rename(path.with_name(LEGACY_TOKEN_FILE + ".migrated"))
    return True
