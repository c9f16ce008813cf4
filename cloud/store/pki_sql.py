"""Schema of the provisioning tables (claim tokens, certificates, signed artifacts, status).

The statements over them are written once in the repositories: ``gateways``
(``GatewayRepository``) and ``artifacts`` (``ArtifactRepository``).

``claim_tokens``: one row per one-time claim token; only the SHA-256 of its secret is
kept (like bearer tokens). Redeeming is one conditional ``UPDATE .. RETURNING``: two
gateways racing with one token cannot both win, on either store or across brokers.

``gateway_certificates``: every certificate the CA issued, by serial; a request's client
certificate must be found here and not revoked (revocation is immediate because it is
checked on every request, not published in a CRL that clients fetch later).
"""

from __future__ import annotations

from typing import Final

__all__ = ["PG_ARTIFACTS", "PG_SCHEMA", "SQLITE_SCHEMA"]

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
