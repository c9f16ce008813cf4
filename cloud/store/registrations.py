"""Context source registrations as stored (``ldt.cloud.ngsild.registrations``).

One row per registration in ``csource_registrations`` (DDL: ``registration_sql``): its
id and the document ``registrations.validate`` made. Queries filter in Python
(``registrations.matches``): registrations are few, and their selectors (idPattern,
arrays of types) do not index well. The statements are the same on both engines.
"""

from __future__ import annotations

import builtins
from typing import Any

import orjson

from ldt.cloud.store.database import Database, Tx

__all__ = ["RegistrationRepository"]

Document = dict[str, Any]


class RegistrationRepository:
    """Registrations of one store (one tenant); every method is one transaction."""

    def __init__(self, db: Database) -> None:
        self._db = db
        d = db.dialect
        self._insert = (
            f"INSERT INTO csource_registrations (id, doc) VALUES (?, {d.json_param})"  # noqa: S608
            " ON CONFLICT (id) DO NOTHING"
        )
        self._update = f"UPDATE csource_registrations SET doc = {d.json_param} WHERE id = ?"  # noqa: S608
        self._select = f"SELECT {d.doc_text()} FROM csource_registrations"  # noqa: S608

    async def put(self, doc: Document, *, create: bool) -> bool:
        """Store a registration (``doc["id"]``): ``create`` a new one (False if the id
        exists) or replace an existing one (False if absent); nothing written on False."""
        reg_id, text = doc["id"], orjson.dumps(doc).decode()
        sql, params = (self._insert, (reg_id, text)) if create else (self._update, (text, reg_id))

        async def work(tx: Tx) -> bool:
            return await tx.execute(sql, params) == 1

        return await self._db.write(work)

    async def delete(self, reg_id: str) -> bool:
        """Delete a registration; False if absent."""

        async def work(tx: Tx) -> bool:
            sql = "DELETE FROM csource_registrations WHERE id = ?"
            return await tx.execute(sql, (reg_id,)) == 1

        return await self._db.write(work)

    async def get(self, reg_id: str) -> Document | None:
        """One registration's document, or None."""

        async def work(tx: Tx) -> Document | None:
            row = await tx.fetchone(f"{self._select} WHERE id = ?", (reg_id,))
            return None if row is None else _load(row[0])

        return await self._db.read(work, snapshot=False)

    async def list(self) -> builtins.list[Document]:
        """Every registration's document, by id (the API filters and pages them)."""

        async def work(tx: Tx) -> builtins.list[Document]:
            return [_load(r[0]) for r in await tx.fetchall(f"{self._select} ORDER BY id")]

        return await self._db.read(work)


def _load(text: str | bytes) -> Document:
    """A stored document with ``id`` and ``type`` first, as users expect to read them
    (PostgreSQL's jsonb keeps keys sorted by length, not as written)."""
    loaded: Document = orjson.loads(text)
    if "id" in loaded and "type" in loaded:
        return {"id": loaded.pop("id"), "type": loaded.pop("type"), **loaded}
    return loaded
