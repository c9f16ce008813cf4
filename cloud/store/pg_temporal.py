"""PostgreSQL's DDL of the temporal tables (``postgres._MIGRATIONS``).

The temporal API, every read and the history of entity writes are
``ldt.cloud.store.temporal``, written once for both engines.
"""

from __future__ import annotations

__all__ = ["DELETED_AT", "PARTIAL_DELETED_INDEX", "SCHEMA"]

SCHEMA = """
CREATE TABLE temporal_entities (
    id text PRIMARY KEY,
    type text NOT NULL,      -- main type (first), for type= filters
    types text NOT NULL,     -- JSON: the type as written (a name or a list)
    created_at_ms bigint NOT NULL,
    modified_at_ms bigint NOT NULL
);
CREATE INDEX temporal_entities_by_type ON temporal_entities (type, id);
CREATE TABLE attr_instances (
    instance_id text PRIMARY KEY,
    entity_id text NOT NULL,
    attr text NOT NULL,      -- stored spelling (entity_ops)
    dataset_id text,
    observed_at_ms bigint,
    created_at_ms bigint NOT NULL,
    modified_at_ms bigint NOT NULL,
    doc jsonb NOT NULL        -- the normalized instance JSON, without instanceId
);
CREATE INDEX attr_instances_by_observed
    ON attr_instances (entity_id, attr, observed_at_ms);
CREATE INDEX attr_instances_by_modified
    ON attr_instances (entity_id, attr, modified_at_ms);
"""

DELETED_AT = """
ALTER TABLE attr_instances ADD COLUMN deleted_at_ms bigint;
CREATE INDEX attr_instances_by_deleted ON attr_instances (entity_id, attr, deleted_at_ms);
"""
"""Migration after ``SCHEMA``: deletion records (``temporal.deletion_row``) carry deletedAt."""

PARTIAL_DELETED_INDEX = """
DROP INDEX attr_instances_by_deleted;
CREATE INDEX attr_instances_by_deleted ON attr_instances (entity_id, attr, deleted_at_ms)
    WHERE deleted_at_ms IS NOT NULL;
"""
"""Migration after ``DELETED_AT``: only deletion records have deletedAt, so only they are indexed.

Every entity write adds instances; with the index whole, each paid an insert
into it for a NULL. A ``deleted_at_ms IS NOT NULL`` query (``timeproperty=
deletedAt``) is still answered from the partial index.
"""
