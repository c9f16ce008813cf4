"""SQL of the provisioning tables (claim tokens, certificates, signed artifacts), both stores.

``claim_tokens``: one row per one-time claim token; only the SHA-256 of its secret is
kept (like bearer tokens). Redeeming is one conditional ``UPDATE .. RETURNING``: two
gateways racing with one token cannot both win, on either store or across brokers.

``gateway_certificates``: every certificate the CA issued, by serial; a request's client
certificate must be found here and not revoked (revocation is immediate because it is
checked on every request, not published in a CRL that clients fetch later).
"""

from __future__ import annotations

from typing import Final

from ldt.cloud.store import control_sql

__all__ = ["PG_ARTIFACTS", "PG_SCHEMA", "SQLITE_SCHEMA", "sql"]

SQLITE_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS claim_tokens (
    token_sha256 BLOB PRIMARY KEY,
    site TEXT NOT NULL,
    gateway_id TEXT,             -- NULL: any new gateway id; else only this one
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    used_at_ms INTEGER,
    used_by TEXT
);
CREATE TABLE IF NOT EXISTS gateway_certificates (
    serial TEXT PRIMARY KEY,     -- lower-case hex
    gateway_id TEXT NOT NULL,
    site TEXT NOT NULL,
    issued_at_ms INTEGER NOT NULL,
    not_after_ms INTEGER NOT NULL,
    revoked_at_ms INTEGER
);
CREATE INDEX IF NOT EXISTS gateway_certificates_by_gateway
    ON gateway_certificates (gateway_id, not_after_ms);
CREATE TABLE IF NOT EXISTS artifacts (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    envelope TEXT NOT NULL,      -- JSON, ldt.contract.artifacts
    content BLOB NOT NULL,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE TABLE IF NOT EXISTS artifact_reports (
    gateway_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    at_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS artifact_reports_by_gateway ON artifact_reports (gateway_id, at_ms);
CREATE TABLE IF NOT EXISTS gateway_status (
    gateway_id TEXT PRIMARY KEY,
    last_seen_ms INTEGER NOT NULL,   -- the cloud's clock
    agent_version TEXT NOT NULL,
    pending INTEGER NOT NULL,
    oldest_pending_ms INTEGER,
    clock_skew_ms INTEGER NOT NULL   -- gateway clock minus cloud clock at receipt
);
"""
PG_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS claim_tokens (
    token_sha256 bytea PRIMARY KEY,
    site text NOT NULL,
    gateway_id text,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    used_at_ms bigint,
    used_by text
);
CREATE TABLE IF NOT EXISTS gateway_certificates (
    serial text PRIMARY KEY,
    gateway_id text NOT NULL,
    site text NOT NULL,
    issued_at_ms bigint NOT NULL,
    not_after_ms bigint NOT NULL,
    revoked_at_ms bigint
);
CREATE INDEX IF NOT EXISTS gateway_certificates_by_gateway
    ON gateway_certificates (gateway_id, not_after_ms);
"""
"""A migration of ``PostgresStore`` (provisioning); idempotent, like the SQLite one."""
PG_ARTIFACTS: Final = """
CREATE TABLE IF NOT EXISTS artifacts (
    kind text NOT NULL,
    name text NOT NULL,
    version bigint NOT NULL,
    envelope text NOT NULL,
    content bytea NOT NULL,
    created_at_ms bigint NOT NULL,
    PRIMARY KEY (kind, name, version)
);
CREATE TABLE IF NOT EXISTS artifact_reports (
    gateway_id text NOT NULL,
    kind text NOT NULL,
    name text NOT NULL,
    version bigint NOT NULL,
    status text NOT NULL,
    reason text,
    at_ms bigint NOT NULL
);
CREATE INDEX IF NOT EXISTS artifact_reports_by_gateway ON artifact_reports (gateway_id, at_ms);
CREATE TABLE IF NOT EXISTS gateway_status (
    gateway_id text PRIMARY KEY,
    last_seen_ms bigint NOT NULL,
    agent_version text NOT NULL,
    pending bigint NOT NULL,
    oldest_pending_ms bigint,
    clock_skew_ms bigint NOT NULL
);
"""
"""A migration of ``PostgresStore`` (signed artifacts, gateways' reports, the fleet view)."""

_SQL: Final = {
    "add_claim": "INSERT INTO claim_tokens (token_sha256, site, gateway_id, created_at_ms,"
    " expires_at_ms) VALUES ({p}, {p}, {p}, {p}, {p})",
    # (now, gateway, token, now, gateway): the winner gets its site back
    "redeem": "UPDATE claim_tokens SET used_at_ms = {p}, used_by = {p}"
    " WHERE token_sha256 = {p} AND used_at_ms IS NULL AND expires_at_ms > {p}"
    " AND (gateway_id IS NULL OR gateway_id = {p}) RETURNING site",
    "claim": "SELECT site, gateway_id, expires_at_ms, used_at_ms, used_by FROM claim_tokens"
    " WHERE token_sha256 = {p}",
    "add_cert": "INSERT INTO gateway_certificates (serial, gateway_id, site, issued_at_ms,"
    " not_after_ms) VALUES ({p}, {p}, {p}, {p}, {p})",
    "cert": "SELECT gateway_id, site, not_after_ms, revoked_at_ms FROM gateway_certificates"
    " WHERE serial = {p}",
    "has_certs": "SELECT 1 FROM gateway_certificates WHERE gateway_id = {p} LIMIT 1",
    "revoke": "UPDATE gateway_certificates SET revoked_at_ms = {p}"
    " WHERE gateway_id = {p} AND revoked_at_ms IS NULL",
    "certs": "SELECT serial, gateway_id, site, issued_at_ms, not_after_ms, revoked_at_ms"
    " FROM gateway_certificates ORDER BY gateway_id, issued_at_ms",
    "add_artifact": "INSERT INTO artifacts (kind, name, version, envelope, content,"
    " created_at_ms) VALUES ({p}, {p}, {p}, {p}, {p}, {p})",
    "latest_version": "SELECT max(version) FROM artifacts WHERE kind = {p} AND name = {p}",
    "latest_artifact": "SELECT envelope, content FROM artifacts WHERE kind = {p} AND name = {p}"
    " ORDER BY version DESC LIMIT 1",
    "add_report": "INSERT INTO artifact_reports (gateway_id, kind, name, version, status,"
    " reason, at_ms) VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p})",
    "reports": "SELECT gateway_id, kind, name, version, status, reason, at_ms"
    " FROM artifact_reports ORDER BY at_ms, gateway_id",
    "put_status": "INSERT INTO gateway_status (gateway_id, last_seen_ms, agent_version, pending,"
    " oldest_pending_ms, clock_skew_ms) VALUES ({p}, {p}, {p}, {p}, {p}, {p})"
    " ON CONFLICT (gateway_id) DO UPDATE SET last_seen_ms = excluded.last_seen_ms,"
    " agent_version = excluded.agent_version, pending = excluded.pending,"
    " oldest_pending_ms = excluded.oldest_pending_ms, clock_skew_ms = excluded.clock_skew_ms",
    "status_skew": "SELECT clock_skew_ms FROM gateway_status WHERE gateway_id = {p}",
    "statuses": "SELECT gateway_id, last_seen_ms, agent_version, pending, oldest_pending_ms,"
    " clock_skew_ms FROM gateway_status ORDER BY gateway_id",
}


def sql(statement: str, *, postgres: bool) -> str:
    """One statement (of this module or ``control_sql``) in a dialect (``?`` or ``%s``)."""
    text = _SQL.get(statement) or control_sql.STATEMENTS[statement]
    return text.format(p="%s" if postgres else "?")
