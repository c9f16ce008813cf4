"""SQL of edge control (catalogue, rollouts, groups, commands, audit), both stores.

Run through ``Store.pki_query`` by statement name, like the provisioning tables: the logic
over them (``ldt.cloud.control``) is the same for every store.

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

__all__ = ["PG_SCHEMA", "SQLITE_SCHEMA", "STATEMENTS"]

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

STATEMENTS: Final = {
    "add_catalogue": "INSERT INTO catalogue (kind, name, version, label, metadata, rollback_of,"
    " created_at_ms) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
    "catalogue": "SELECT kind, name, version, label, metadata, rollback_of, created_at_ms"
    " FROM catalogue WHERE kind = {p} ORDER BY name, version",
    "catalogue_entry": "SELECT kind, name, version, label, metadata, rollback_of, created_at_ms"
    " FROM catalogue WHERE kind = {p} AND name = {p} AND version = {p}",
    "artifact_content": "SELECT content FROM artifacts WHERE kind = {p} AND name = {p}"
    " AND version = {p}",
    "assign": "INSERT INTO assignments (kind, name, target, created_at_ms)"
    " VALUES ({p}, {p}, {p}, {p}) ON CONFLICT (kind, name, target) DO NOTHING",
    "unassign": "DELETE FROM assignments WHERE kind = {p} AND name = {p} AND target = {p}"
    " RETURNING target",
    "assignments_of": "SELECT target FROM assignments WHERE kind = {p} AND name = {p}"
    " ORDER BY target",
    # (gateway, gateway): what one gateway should run, direct or through its groups
    "assigned_to": "SELECT DISTINCT a.kind, a.name, (SELECT max(version) FROM artifacts v"
    " WHERE v.kind = a.kind AND v.name = a.name) FROM assignments a"
    " WHERE a.target = 'gateway:' || {p} OR a.target IN (SELECT 'group:' || group_name"
    " FROM gateway_groups WHERE gateway_id = {p}) ORDER BY a.kind, a.name",
    "group_add": "INSERT INTO gateway_groups (group_name, gateway_id) VALUES ({p}, {p})"
    " ON CONFLICT (group_name, gateway_id) DO NOTHING",
    "group_remove": "DELETE FROM gateway_groups WHERE group_name = {p} AND gateway_id = {p}"
    " RETURNING gateway_id",
    "group_members": "SELECT gateway_id FROM gateway_groups WHERE group_name = {p}"
    " ORDER BY gateway_id",
    "groups": "SELECT group_name, gateway_id FROM gateway_groups ORDER BY group_name, gateway_id",
    # (gateway, kind, name, version): that gateway's newest report on that version
    "last_report": "SELECT status, reason, at_ms FROM artifact_reports WHERE gateway_id = {p}"
    " AND kind = {p} AND name = {p} AND version = {p} ORDER BY at_ms DESC LIMIT 1",
    "add_command": "INSERT INTO commands (id, gateway_id, entity_id, attr, value, status,"
    " created_at_ms, expires_at_ms, updated_at_ms) VALUES ({p}, {p}, {p}, {p}, {p},"
    " 'PENDING', {p}, {p}, {p})",
    # (now, gateway, now): commands to hand out, marked delivered in the same statement
    "deliver_commands": "UPDATE commands SET status = 'DELIVERED', updated_at_ms = {p}"
    " WHERE gateway_id = {p} AND status = 'PENDING' AND expires_at_ms > {p}"
    " RETURNING id, entity_id, attr, value, expires_at_ms",
    # (status, info, now, id, gateway): only the gateway a command went to may settle it
    "settle_command": "UPDATE commands SET status = {p}, info = {p}, updated_at_ms = {p}"
    " WHERE id = {p} AND gateway_id = {p} AND status IN ('PENDING', 'DELIVERED')"
    " RETURNING entity_id, attr",
    # (now, now, now - grace): undelivered past expiry, or delivered and never answered
    "expire_commands": "UPDATE commands SET status = 'EXPIRED', info = 'expired before the"
    " gateway executed it', updated_at_ms = {p} WHERE (status = 'PENDING' AND"
    " expires_at_ms <= {p}) OR (status = 'DELIVERED' AND expires_at_ms <= {p})"
    " RETURNING id, gateway_id, entity_id, attr",
    "command": "SELECT id, gateway_id, entity_id, attr, value, status, info, created_at_ms,"
    " expires_at_ms, updated_at_ms FROM commands WHERE id = {p}",
    "commands": "SELECT id, gateway_id, entity_id, attr, value, status, info, created_at_ms,"
    " expires_at_ms, updated_at_ms FROM commands ORDER BY created_at_ms DESC LIMIT {p}",
    "entity_owner": "SELECT gateway_id FROM entities WHERE id = {p}",
    "put_command_point": "INSERT INTO command_points (entity_id, attr, gateway_id)"
    " VALUES ({p}, {p}, {p}) ON CONFLICT (entity_id, attr) DO UPDATE SET"
    " gateway_id = excluded.gateway_id",
    "drop_command_points": "DELETE FROM command_points WHERE gateway_id = {p}",
    "command_points": "SELECT entity_id, attr, gateway_id FROM command_points",
    "add_audit": "INSERT INTO audit_log (at_ms, origin, gateway_id, action, subject, detail)"
    " VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
    "audit": "SELECT at_ms, origin, gateway_id, action, subject, detail FROM audit_log"
    " ORDER BY id DESC LIMIT {p}",
}
