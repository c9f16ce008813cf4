"""Schema of edge control (catalogue, rollouts, groups, commands, audit), both stores.

The statements over these tables are written once in ``ControlRepository``
(``ldt.cloud.store.control``); the logic over them is ``ldt.cloud.control``.

``catalogue``: one row per published version of a model bundle or rule set, with what an
admin needs to choose (the author's version label, licence, inputs and outputs, checksum)
and, for a rollback, which earlier version it republishes. The content itself is the
signed artifact (``artifacts``) of the same (kind, name, version).

``assignments``: which gateways (``gateway:ID``) or groups (``group:NAME``) run an artifact;
they always get its newest version (a rollback is a newer version, see
``ldt.contract.artifacts``).

``commands``: one row per command sent through the NGSI-LD API, with its FIWARE-style
status (PENDING, DELIVERED, OK, ERROR, EXPIRED) and result. ``command_points`` is what each
gateway declared it can execute: an update of any other attribute is just data.
"""

from __future__ import annotations

from typing import Final

__all__ = ["PG_SCHEMA", "SQLITE_SCHEMA"]

_TABLES: Final = """
CREATE TABLE IF NOT EXISTS catalogue (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version {big} NOT NULL,
    label TEXT NOT NULL,
    metadata TEXT NOT NULL,
    rollback_of {big},
    created_at_ms {big} NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE TABLE IF NOT EXISTS assignments (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    target TEXT NOT NULL,
    created_at_ms {big} NOT NULL,
    PRIMARY KEY (kind, name, target)
);
CREATE TABLE IF NOT EXISTS gateway_groups (
    group_name TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    PRIMARY KEY (group_name, gateway_id)
);
CREATE TABLE IF NOT EXISTS commands (
    id TEXT PRIMARY KEY,
    gateway_id TEXT NOT NULL,
    entity_id TEXT NOT NULL,
    attr TEXT NOT NULL,
    value TEXT NOT NULL,
    status TEXT NOT NULL,
    info TEXT,
    created_at_ms {big} NOT NULL,
    expires_at_ms {big} NOT NULL,
    updated_at_ms {big} NOT NULL
);
CREATE INDEX IF NOT EXISTS commands_open ON commands (gateway_id, status, created_at_ms);
CREATE TABLE IF NOT EXISTS command_points (
    entity_id TEXT NOT NULL,
    attr TEXT NOT NULL,
    gateway_id TEXT NOT NULL,
    PRIMARY KEY (entity_id, attr)
);
CREATE TABLE IF NOT EXISTS audit_log (
    id {serial},
    at_ms {big} NOT NULL,
    origin TEXT NOT NULL,
    gateway_id TEXT,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_by_time ON audit_log (at_ms);
"""
SQLITE_SCHEMA: Final = _TABLES.format(big="INTEGER", serial="INTEGER PRIMARY KEY AUTOINCREMENT")
PG_SCHEMA: Final = _TABLES.format(big="bigint", serial="bigserial PRIMARY KEY")
"""A migration of ``PostgresStore`` (edge control); idempotent, like the SQLite one."""
