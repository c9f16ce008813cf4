--
-- PostgreSQL database dump
--


-- Dumped from database version 15.18 (Debian 15.18-0+deb12u1)
-- Dumped by pg_dump version 15.18 (Debian 15.18-0+deb12u1)

SET statement_timeout = 0;
SET lock_timeout = 0;
SET idle_in_transaction_session_timeout = 0;
SET client_encoding = 'UTF8';
SET standard_conforming_strings = on;
SELECT pg_catalog.set_config('search_path', '', false);
SET check_function_bodies = false;
SET xmloption = content;
SET client_min_messages = warning;
SET row_security = off;

--
-- Name: ldt_legacy; Type: SCHEMA; Schema: -; Owner: -
--

CREATE SCHEMA ldt_legacy;


SET default_tablespace = '';

SET default_table_access_method = heap;

--
-- Name: artifact_reports; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.artifact_reports (
    gateway_id text NOT NULL,
    kind text NOT NULL,
    name text NOT NULL,
    version bigint NOT NULL,
    status text NOT NULL,
    reason text,
    at_ms bigint NOT NULL
);


--
-- Name: artifacts; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.artifacts (
    kind text NOT NULL,
    name text NOT NULL,
    version bigint NOT NULL,
    envelope text NOT NULL,
    content bytea NOT NULL,
    created_at_ms bigint NOT NULL
);


--
-- Name: assignments; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.assignments (
    kind text NOT NULL,
    name text NOT NULL,
    target text NOT NULL,
    created_at_ms bigint NOT NULL
);


--
-- Name: attr_instances; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.attr_instances (
    instance_id text NOT NULL,
    entity_id text NOT NULL,
    attr text NOT NULL,
    dataset_id text,
    observed_at_ms bigint,
    created_at_ms bigint NOT NULL,
    modified_at_ms bigint NOT NULL,
    doc jsonb NOT NULL,
    deleted_at_ms bigint
);


--
-- Name: audit_log; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.audit_log (
    id bigint NOT NULL,
    at_ms bigint NOT NULL,
    origin text NOT NULL,
    gateway_id text,
    action text NOT NULL,
    subject text NOT NULL,
    detail text NOT NULL
);


--
-- Name: audit_log_id_seq; Type: SEQUENCE; Schema: ldt_legacy; Owner: -
--

CREATE SEQUENCE ldt_legacy.audit_log_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;


--
-- Name: audit_log_id_seq; Type: SEQUENCE OWNED BY; Schema: ldt_legacy; Owner: -
--

ALTER SEQUENCE ldt_legacy.audit_log_id_seq OWNED BY ldt_legacy.audit_log.id;


--
-- Name: catalogue; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.catalogue (
    kind text NOT NULL,
    name text NOT NULL,
    version bigint NOT NULL,
    label text NOT NULL,
    metadata text NOT NULL,
    rollback_of bigint,
    created_at_ms bigint NOT NULL
);


--
-- Name: claim_tokens; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.claim_tokens (
    token_sha256 bytea NOT NULL,
    site text NOT NULL,
    gateway_id text,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    used_at_ms bigint,
    used_by text
);


--
-- Name: command_points; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.command_points (
    entity_id text NOT NULL,
    attr text NOT NULL,
    gateway_id text NOT NULL
);


--
-- Name: commands; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.commands (
    id text NOT NULL,
    gateway_id text NOT NULL,
    entity_id text NOT NULL,
    attr text NOT NULL,
    value text NOT NULL,
    status text NOT NULL,
    info text,
    created_at_ms bigint NOT NULL,
    expires_at_ms bigint NOT NULL,
    updated_at_ms bigint NOT NULL
);


--
-- Name: csource_registrations; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.csource_registrations (
    id text NOT NULL,
    doc jsonb NOT NULL
);


--
-- Name: entities; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.entities (
    id text NOT NULL,
    type text NOT NULL,
    doc jsonb NOT NULL,
    gateway_id text,
    created_at timestamp with time zone DEFAULT now() NOT NULL,
    modified_at timestamp with time zone DEFAULT now() NOT NULL,
    location_box box
);


--
-- Name: gateway_certificates; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.gateway_certificates (
    serial text NOT NULL,
    gateway_id text NOT NULL,
    site text NOT NULL,
    issued_at_ms bigint NOT NULL,
    not_after_ms bigint NOT NULL,
    revoked_at_ms bigint
);


--
-- Name: gateway_groups; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.gateway_groups (
    group_name text NOT NULL,
    gateway_id text NOT NULL
);


--
-- Name: gateway_status; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.gateway_status (
    gateway_id text NOT NULL,
    last_seen_ms bigint NOT NULL,
    agent_version text NOT NULL,
    pending bigint NOT NULL,
    oldest_pending_ms bigint,
    clock_skew_ms bigint NOT NULL
);


--
-- Name: gateways; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.gateways (
    id text NOT NULL,
    token_sha256 bytea NOT NULL,
    created_at timestamp with time zone DEFAULT now() NOT NULL
);


--
-- Name: ldt_schema_version; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.ldt_schema_version (
    version integer NOT NULL
);


--
-- Name: readings; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.readings (
    gateway_id text NOT NULL,
    seq bigint NOT NULL,
    entity_id text NOT NULL,
    attr text NOT NULL,
    observed_at_ms bigint NOT NULL,
    value jsonb,
    quality text NOT NULL,
    reason text
);


--
-- Name: subscription_generation; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.subscription_generation (
    one boolean DEFAULT true NOT NULL,
    n bigint NOT NULL,
    CONSTRAINT subscription_generation_one_check CHECK (one)
);


--
-- Name: subscription_slots; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.subscription_slots (
    id text NOT NULL,
    due_ms bigint NOT NULL
);


--
-- Name: subscriptions; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.subscriptions (
    id text NOT NULL,
    doc jsonb NOT NULL,
    times_sent bigint DEFAULT 0 NOT NULL,
    times_failed bigint DEFAULT 0 NOT NULL,
    last_notification text,
    last_success text,
    last_failure text
);


--
-- Name: temporal_entities; Type: TABLE; Schema: ldt_legacy; Owner: -
--

CREATE TABLE ldt_legacy.temporal_entities (
    id text NOT NULL,
    type text NOT NULL,
    types text NOT NULL,
    created_at_ms bigint NOT NULL,
    modified_at_ms bigint NOT NULL
);


--
-- Name: audit_log id; Type: DEFAULT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.audit_log ALTER COLUMN id SET DEFAULT nextval('ldt_legacy.audit_log_id_seq'::regclass);


--
-- Data for Name: artifact_reports; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.artifact_reports VALUES ('gw-1', 'rules', 'cooling', 1, 'running', NULL, 1796656259396);


--
-- Data for Name: artifacts; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.artifacts VALUES ('rules', 'cooling', 1, '{"kind":"rules","name":"cooling","version":1,"sha256":"463559ad52b49f8f462552909b063e8965b23341150bac71a86d8d194eed4cbe","size":350,"signature":"i5/ImkHtccnJskRoiofGt+UpfHpve41ckRJLykAI09F/cAjz8EDrYCzubL/1OUxMe2d1Jo2v+pnmfIFpJYUYCw=="}', '\x7b226465736372697074696f6e223a22222c226c696d697473223a5b5d2c226e616d65223a22636f6f6c696e67222c2272756c6573223a5b7b22616c657274223a6e756c6c2c226465736372697074696f6e223a22222c226472795f72756e223a66616c73652c22656e61626c6564223a747275652c226964223a2266616e222c226f7468657277697365223a6e756c6c2c227468656e223a7b22646576696365223a226d30222c22706f696e74223a2272656c61794f6e222c2276616c7565223a747275657d2c227768656e223a7b2261626f7665223a313535302e302c2262656c6f77223a6e756c6c2c226265747765656e223a6e756c6c2c22646576696365223a226d30222c22657175616c73223a6e756c6c2c22666f725f73223a302e302c2268797374657265736973223a302e302c22706f696e74223a22616374697665506f776572227d7d5d2c2274696d657a6f6e65223a22555443227d', 1796656259340);


--
-- Data for Name: assignments; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.assignments VALUES ('rules', 'cooling', 'gateway:gw-1', 1796656259353);
INSERT INTO ldt_legacy.assignments VALUES ('rules', 'cooling', 'group:north', 1796656259383);


--
-- Data for Name: attr_instances; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000041', 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', NULL, 1795780801000, 1796656259031, 1796656259031, '{"type": "Property", "value": 1490.0, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:01.000Z"}, "unitCode": "WTT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z", "observedAt": "2026-11-27T12:00:01.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000042', 'urn:ngsi-ld:Device:gw-1:m0', 'voltage', NULL, 1795780801000, 1796656259031, 1796656259031, '{"type": "Property", "value": 229.8, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:01.000Z"}, "unitCode": "VLT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z", "observedAt": "2026-11-27T12:00:01.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000043', 'urn:ngsi-ld:Device:gw-1:m0', 'relayOn', NULL, 1795780800500, 1796656259031, 1796656259031, '{"type": "Property", "value": true, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:00.500Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z", "observedAt": "2026-11-27T12:00:00.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000044', 'urn:ngsi-ld:Device:gw-1:m0', 'dateLastValueReported', NULL, NULL, 1796656259031, 1796656259031, '{"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-27T12:00:01.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000045', 'urn:ngsi-ld:Device:gw-1:m0', 'deviceState', NULL, 1795780801000, 1796656259031, 1796656259031, '{"type": "Property", "value": "ok", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z", "observedAt": "2026-11-27T12:00:01.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000046', 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', NULL, 1795780801000, 1796656259031, 1796656259031, '{"type": "Property", "value": 21.7, "quality": {"type": "Property", "value": "stale", "observedAt": "2026-11-27T12:00:01.000Z"}, "unitCode": "CEL", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z", "observedAt": "2026-11-27T12:00:01.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000047', 'urn:ngsi-ld:Device:gw-1:m1', 'relativeHumidity', NULL, 1795780800000, 1796656259031, 1796656259031, '{"type": "Property", "value": 40, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:00.000Z"}, "unitCode": "P1", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z", "observedAt": "2026-11-27T12:00:00.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000048', 'urn:ngsi-ld:Device:gw-1:m1', 'operatingMode', NULL, 1795780801000, 1796656259031, 1796656259031, '{"type": "Property", "value": "auto", "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:01.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z", "observedAt": "2026-11-27T12:00:01.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000049', 'urn:ngsi-ld:Device:gw-1:m1', 'dateLastValueReported', NULL, NULL, 1796656259031, 1796656259031, '{"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-27T12:00:01.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000004a', 'urn:ngsi-ld:Device:gw-1:m1', 'deviceState', NULL, 1795780801000, 1796656259031, 1796656259031, '{"type": "Property", "value": "stale", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.031Z", "observedAt": "2026-11-27T12:00:01.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000004b', 'urn:ngsi-ld:Device:gw-1:m0', 'relayOn', NULL, 1795780802500, 1796656259031, 1796656259073, '{"type": "Property", "value": false, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:02.500Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000004c', 'urn:ngsi-ld:Device:gw-1:m0', 'voltage', NULL, 1795780803000, 1796656259031, 1796656259073, '{"type": "Property", "value": 230.5, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:03.000Z"}, "unitCode": "VLT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z", "observedAt": "2026-11-27T12:00:03.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000004d', 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', NULL, 1795780802500, 1796656259031, 1796656259073, '{"type": "Property", "value": 1610.0, "reason": {"type": "Property", "value": "modbus timeout", "observedAt": "2026-11-27T12:00:03.000Z"}, "quality": {"type": "Property", "value": "bad", "observedAt": "2026-11-27T12:00:03.000Z"}, "unitCode": "WTT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000004e', 'urn:ngsi-ld:Device:gw-1:m0', 'deviceState', NULL, 1795780803000, 1796656259031, 1796656259073, '{"type": "Property", "value": "error", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z", "observedAt": "2026-11-27T12:00:03.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000004f', 'urn:ngsi-ld:Device:gw-1:m0', 'dateLastValueReported', NULL, NULL, 1796656259031, 1796656259073, '{"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-27T12:00:03.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000050', 'urn:ngsi-ld:Device:gw-1:m1', 'deviceState', NULL, 1795780802500, 1796656259031, 1796656259073, '{"type": "Property", "value": "ok", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000051', 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', NULL, 1795780802500, 1796656259031, 1796656259073, '{"type": "Property", "value": 22.4, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:02.500Z"}, "unitCode": "CEL", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000052', 'urn:ngsi-ld:Device:gw-1:m1', 'operatingMode', NULL, 1795780802500, 1796656259031, 1796656259073, '{"type": "Property", "value": "manual", "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:02.500Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000065', 'urn:ngsi-ld:Building:b1', 'floors', NULL, NULL, 1796656259144, 1796656259144, '{"type": "Property", "value": 2, "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.144Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000053', 'urn:ngsi-ld:Device:gw-1:m1', 'relativeHumidity', NULL, 1795780800000, 1796656259031, 1796656259073, '{"type": "Property", "value": 40, "reason": {"type": "Property", "value": "CRC error", "observedAt": "2026-11-27T12:00:02.000Z"}, "quality": {"type": "Property", "value": "bad", "observedAt": "2026-11-27T12:00:02.000Z"}, "unitCode": "P1", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z", "observedAt": "2026-11-27T12:00:00.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000054', 'urn:ngsi-ld:Device:gw-1:m1', 'dateLastValueReported', NULL, NULL, 1796656259031, 1796656259073, '{"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-27T12:00:02.500Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.073Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000055', 'urn:ngsi-ld:Device:gw-1:m0', 'relayOn', NULL, 1795780802500, 1796656259031, 1796656259106, '{"type": "Property", "value": false, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:02.500Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.106Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000056', 'urn:ngsi-ld:Device:gw-1:m0', 'voltage', NULL, 1795780803000, 1796656259031, 1796656259106, '{"type": "Property", "value": 230.5, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:03.000Z"}, "unitCode": "VLT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.106Z", "observedAt": "2026-11-27T12:00:03.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000057', 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', NULL, 1795780802500, 1796656259031, 1796656259106, '{"type": "Property", "value": 1610.0, "reason": {"type": "Property", "value": "modbus timeout", "observedAt": "2026-11-27T12:00:03.000Z"}, "quality": {"type": "Property", "value": "bad", "observedAt": "2026-11-27T12:00:03.000Z"}, "unitCode": "WTT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.106Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000058', 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', NULL, 1795780802500, 1796656259031, 1796656259106, '{"type": "Property", "value": 22.4, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:02.500Z"}, "unitCode": "CEL", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.106Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000059', 'urn:ngsi-ld:Device:gw-1:m1', 'operatingMode', NULL, 1795780802500, 1796656259031, 1796656259106, '{"type": "Property", "value": "manual", "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:02.500Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.106Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000005a', 'urn:ngsi-ld:Device:gw-1:m0', 'relayOn', NULL, 1795780802500, 1796656259031, 1796656259123, '{"type": "Property", "value": false, "reason": {"type": "Property", "value": "coil read failed", "observedAt": "2026-11-27T12:00:04.000Z"}, "quality": {"type": "Property", "value": "bad", "observedAt": "2026-11-27T12:00:04.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000005b', 'urn:ngsi-ld:Device:gw-1:m0', 'voltage', NULL, 1795780803000, 1796656259031, 1796656259123, '{"type": "Property", "value": 230.5, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:03.000Z"}, "unitCode": "VLT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:03.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000005c', 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', NULL, 1795780804000, 1796656259031, 1796656259123, '{"type": "Property", "value": 1550.0, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:04.000Z"}, "unitCode": "WTT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000005d', 'urn:ngsi-ld:Device:gw-1:m0', 'deviceState', NULL, 1795780804000, 1796656259031, 1796656259123, '{"type": "Property", "value": "ok", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000005e', 'urn:ngsi-ld:Device:gw-1:m0', 'dateLastValueReported', NULL, NULL, 1796656259031, 1796656259123, '{"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-27T12:00:04.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000005f', 'urn:ngsi-ld:Device:gw-1:m1', 'deviceState', NULL, 1795780804000, 1796656259031, 1796656259123, '{"type": "Property", "value": "stale", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000060', 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', NULL, 1795780804000, 1796656259031, 1796656259123, '{"type": "Property", "value": 22.6, "quality": {"type": "Property", "value": "stale", "observedAt": "2026-11-27T12:00:04.000Z"}, "unitCode": "CEL", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000061', 'urn:ngsi-ld:Device:gw-1:m1', 'operatingMode', NULL, 1795780802500, 1796656259031, 1796656259123, '{"type": "Property", "value": "manual", "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:02.500Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:02.500Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000062', 'urn:ngsi-ld:Device:gw-1:m1', 'relativeHumidity', NULL, 1795780804000, 1796656259031, 1796656259123, '{"type": "Property", "value": 42, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:04.000Z"}, "unitCode": "P1", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000063', 'urn:ngsi-ld:Device:gw-1:m1', 'dateLastValueReported', NULL, NULL, 1796656259031, 1796656259123, '{"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-27T12:00:04.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000064', 'urn:ngsi-ld:Building:b1', 'name', NULL, NULL, 1796656259144, 1796656259144, '{"type": "Property", "value": "Depot North", "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.144Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000066', 'urn:ngsi-ld:Building:b1', 'location', NULL, NULL, 1796656259144, 1796656259144, '{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.6821, 49.4141]}, "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.144Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000007f', 'urn:ngsi-ld:Device:gw-1:m0', 'fanSpeed', NULL, NULL, 1796656259426, 1796656259426, '{"type": "Property", "value": 2, "createdAt": "2026-12-07T15:10:59.426Z", "modifiedAt": "2026-12-07T15:10:59.426Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000067', 'urn:ngsi-ld:Building:b2', 'name', NULL, NULL, 1796656259155, 1796656259155, '{"type": "Property", "value": "Depot South", "createdAt": "2026-12-07T15:10:59.155Z", "modifiedAt": "2026-12-07T15:10:59.155Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000068', 'urn:ngsi-ld:Building:b2', 'floors', NULL, NULL, 1796656259155, 1796656259155, '{"type": "Property", "value": 1, "createdAt": "2026-12-07T15:10:59.155Z", "modifiedAt": "2026-12-07T15:10:59.155Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000069', 'urn:ngsi-ld:Building:b2', 'location', NULL, NULL, 1796656259155, 1796656259155, '{"type": "GeoProperty", "value": {"type": "Polygon", "coordinates": [[[8.6, 49.3], [8.61, 49.3], [8.61, 49.31], [8.6, 49.3]]]}, "createdAt": "2026-12-07T15:10:59.155Z", "modifiedAt": "2026-12-07T15:10:59.155Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000006a', 'urn:ngsi-ld:Room:r1', 'temperature', NULL, 1795780800000, 1796656259165, 1796656259165, '{"type": "Property", "value": 20.5, "unitCode": "CEL", "createdAt": "2026-12-07T15:10:59.165Z", "modifiedAt": "2026-12-07T15:10:59.165Z", "observedAt": "2026-11-27T12:00:00.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000006b', 'urn:ngsi-ld:Room:r1', 'refBuilding', NULL, NULL, 1796656259165, 1796656259165, '{"type": "Relationship", "object": "urn:ngsi-ld:Building:b1", "createdAt": "2026-12-07T15:10:59.165Z", "modifiedAt": "2026-12-07T15:10:59.165Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000006c', 'urn:ngsi-ld:Room:r1', 'location', NULL, NULL, 1796656259165, 1796656259165, '{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.6822, 49.4142]}, "createdAt": "2026-12-07T15:10:59.165Z", "modifiedAt": "2026-12-07T15:10:59.165Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000006d', 'urn:ngsi-ld:Building:b3', 'name', NULL, NULL, 1796656259170, 1796656259170, '{"type": "Property", "value": "Demolished", "createdAt": "2026-12-07T15:10:59.170Z", "modifiedAt": "2026-12-07T15:10:59.170Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000006e', 'urn:ngsi-ld:Building:b1', 'floors', NULL, NULL, 1796656259144, 1796656259181, '{"type": "Property", "value": 3, "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.181Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000006f', 'urn:ngsi-ld:Building:b1', 'name', NULL, NULL, 1796656259144, 1796656259193, '{"type": "Property", "value": "Depot North (extended)", "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.193Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000070', 'urn:ngsi-ld:Building:b1', 'floors', NULL, NULL, 1796656259144, 1796656259193, '{"type": "Property", "value": 4, "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.193Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000071', 'urn:ngsi-ld:Building:b2', 'location', NULL, NULL, 1796656259155, 1796656259216, '{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.605, 49.305]}, "createdAt": "2026-12-07T15:10:59.155Z", "modifiedAt": "2026-12-07T15:10:59.216Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000072', 'urn:ngsi-ld:Room:r1', 'temperature', NULL, 1795780860000, 1796656259165, 1796656259224, '{"type": "Property", "value": 21.0, "unitCode": "CEL", "createdAt": "2026-12-07T15:10:59.165Z", "modifiedAt": "2026-12-07T15:10:59.224Z", "observedAt": "2026-11-27T12:01:00.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000073', 'urn:ngsi-ld:Room:r1', 'temperature', NULL, 1795780920000, 1796656259165, 1796656259236, '{"type": "Property", "value": 21.4, "unitCode": "CEL", "createdAt": "2026-12-07T15:10:59.165Z", "modifiedAt": "2026-12-07T15:10:59.236Z", "observedAt": "2026-11-27T12:02:00.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000074', 'urn:ngsi-ld:Room:r1', 'temperature', 'urn:ngsi-ld:Dataset:raw', 1795780920000, 1796656259244, 1796656259244, '{"type": "Property", "value": 20.9, "createdAt": "2026-12-07T15:10:59.244Z", "datasetId": "urn:ngsi-ld:Dataset:raw", "modifiedAt": "2026-12-07T15:10:59.244Z", "observedAt": "2026-11-27T12:02:00.000Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000075', 'urn:ngsi-ld:Building:b3', 'name', NULL, NULL, 1796656259256, 1796656259256, '{"type": "Property", "value": "urn:ngsi-ld:null", "deletedAt": "2026-12-07T15:10:59.256Z"}', 1796656259256);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000007b', 'urn:ngsi-ld:Vehicle:t1', 'speed', NULL, 1598962020000, 1796656259273, 1796656259273, '{"type": "Property", "value": 100, "createdAt": "2026-12-07T15:10:59.273Z", "modifiedAt": "2026-12-07T15:10:59.273Z", "observedAt": "2020-09-01T12:07:00Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000007c', 'urn:ngsi-ld:Vehicle:t1', 'fuelLevel', NULL, 1598961780000, 1796656259273, 1796656259273, '{"type": "Property", "value": 67, "createdAt": "2026-12-07T15:10:59.273Z", "modifiedAt": "2026-12-07T15:10:59.273Z", "observedAt": "2020-09-01T12:03:00Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000007d', 'urn:ngsi-ld:Vehicle:t1', 'fuelLevel', 'urn:ngsi-ld:Dataset:fuel', 1598969220000, 1796656259273, 1796656259273, '{"type": "Property", "value": 40, "createdAt": "2026-12-07T15:10:59.273Z", "datasetId": "urn:ngsi-ld:Dataset:fuel", "modifiedAt": "2026-12-07T15:10:59.273Z", "observedAt": "2020-09-01T14:07:00Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000076', 'urn:ngsi-ld:Vehicle:t1', 'speed', NULL, 1598961780000, 1796656259273, 1796656259273, '{"type": "Property", "value": 120, "createdAt": "2026-12-07T15:10:59.273Z", "modifiedAt": "2026-12-07T15:10:59.273Z", "observedAt": "2020-09-01T12:03:00Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000077', 'urn:ngsi-ld:Vehicle:t1', 'speed', NULL, 1598961900000, 1796656259273, 1796656259273, '{"type": "Property", "value": 80, "createdAt": "2026-12-07T15:10:59.273Z", "modifiedAt": "2026-12-07T15:10:59.273Z", "observedAt": "2020-09-01T12:05:00Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-00000000007e', 'urn:ngsi-ld:Vehicle:t1', 'speed', NULL, 1598962140000, 1796656259301, 1796656259301, '{"type": "Property", "value": 90, "createdAt": "2026-12-07T15:10:59.301Z", "modifiedAt": "2026-12-07T15:10:59.301Z", "observedAt": "2020-09-01T12:09:00Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000080', 'urn:ngsi-ld:Device:gw-1:m0', 'fanSpeed_status', NULL, 1796656259440, 1796656259440, 1796656259440, '{"type": "Property", "value": "PENDING", "createdAt": "2026-12-07T15:10:59.440Z", "modifiedAt": "2026-12-07T15:10:59.440Z", "observedAt": "2026-12-07T15:10:59.440Z"}', NULL);
INSERT INTO ldt_legacy.attr_instances VALUES ('urn:ngsi-ld:attribute:instance:01a2510ec803-838428e2-000000000081', 'urn:ngsi-ld:Device:gw-1:m0', 'fanSpeed_info', NULL, 1796656259440, 1796656259440, 1796656259440, '{"type": "Property", "value": "PENDING", "createdAt": "2026-12-07T15:10:59.440Z", "modifiedAt": "2026-12-07T15:10:59.440Z", "observedAt": "2026-12-07T15:10:59.440Z"}', NULL);


--
-- Data for Name: audit_log; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.audit_log VALUES (1, 1796656259344, 'cloud', NULL, 'rules.publish', 'cooling', '{"version":1,"label":"463559ad52b4","rollback_of":null}');
INSERT INTO ldt_legacy.audit_log VALUES (2, 1796656259364, 'cloud', NULL, 'rules.assign', 'cooling', '{"target":"gateway:gw-1"}');
INSERT INTO ldt_legacy.audit_log VALUES (3, 1796656259376, 'cloud', NULL, 'group.add', 'north', '{"gateways":["gw-2"]}');
INSERT INTO ldt_legacy.audit_log VALUES (4, 1796656259394, 'cloud', NULL, 'rules.assign', 'cooling', '{"target":"group:north"}');
INSERT INTO ldt_legacy.audit_log VALUES (5, 1796656259420, 'gateway', 'gw-1', 'commands.declare', 'gw-1', '{"points":["urn:ngsi-ld:Device:gw-1:m0/fanSpeed"]}');
INSERT INTO ldt_legacy.audit_log VALUES (6, 1796656259433, 'cloud', 'gw-1', 'command.create', 'urn:ngsi-ld:Command:5a10f011-bd1a-49cc-bf91-e06787d76fbc', '{"entity":"urn:ngsi-ld:Device:gw-1:m0","attr":"fanSpeed","value":2,"expires_at_ms":1796656319430}');


--
-- Data for Name: catalogue; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.catalogue VALUES ('rules', 'cooling', 1, '463559ad52b4', '{"description":"","rules":["fan"],"limits":[],"sha256":"463559ad52b49f8f462552909b063e8965b23341150bac71a86d8d194eed4cbe"}', NULL, 1796656259342);


--
-- Data for Name: claim_tokens; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.claim_tokens VALUES ('\x9e8a3a25614962210d97ebb6890062765ed10e08f430763e69ad7b82dde9b2c7', 'depot-north', NULL, 1796656259317, 1799248259317, NULL, NULL);
INSERT INTO ldt_legacy.claim_tokens VALUES ('\x4b9c0eebb76abbe5a720cf4c6814ba6d9f65521ad26afa1c6b507b7c745d9e12', 'depot-north', 'gw-2', 1796656259319, 1796659859319, 1796656259321, 'gw-2');


--
-- Data for Name: command_points; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.command_points VALUES ('urn:ngsi-ld:Device:gw-1:m0', 'fanSpeed', 'gw-1');


--
-- Data for Name: commands; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.commands VALUES ('urn:ngsi-ld:Command:5a10f011-bd1a-49cc-bf91-e06787d76fbc', 'gw-1', 'urn:ngsi-ld:Device:gw-1:m0', 'fanSpeed', '2', 'PENDING', NULL, 1796656259430, 1796656319430, 1796656259430);


--
-- Data for Name: csource_registrations; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.csource_registrations VALUES ('urn:ngsi-ld:ContextSourceRegistration:legacy-1', '{"id": "urn:ngsi-ld:ContextSourceRegistration:legacy-1", "type": "ContextSourceRegistration", "endpoint": "http://csource.invalid:1026", "createdAt": "2026-12-07T15:10:59.310Z", "modifiedAt": "2026-12-07T15:10:59.310Z", "information": [{"entities": [{"id": "urn:ngsi-ld:Vehicle:A456", "type": "Vehicle"}], "propertyNames": ["speed"]}]}');


--
-- Data for Name: entities; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.entities VALUES ('urn:ngsi-ld:Building:b1', 'Building', '{"id": "urn:ngsi-ld:Building:b1", "name": {"type": "Property", "value": "Depot North (extended)", "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.193Z"}, "type": "Building", "floors": {"type": "Property", "value": 4, "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.193Z"}, "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.6821, 49.4141]}, "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.144Z"}, "createdAt": "2026-12-07T15:10:59.144Z", "modifiedAt": "2026-12-07T15:10:59.193Z"}', NULL, '2026-12-07 15:10:59.144+00', '2026-12-07 15:10:59.193+00', '(8.6821,49.4141),(8.6821,49.4141)');
INSERT INTO ldt_legacy.entities VALUES ('urn:ngsi-ld:Device:gw-1:m0', 'Device', '{"id": "urn:ngsi-ld:Device:gw-1:m0", "type": "Device", "relayOn": {"type": "Property", "value": false, "reason": {"type": "Property", "value": "coil read failed", "observedAt": "2026-11-27T12:00:04.000Z"}, "quality": {"type": "Property", "value": "bad", "observedAt": "2026-11-27T12:00:04.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:02.500Z"}, "voltage": {"type": "Property", "value": 230.5, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:03.000Z"}, "unitCode": "VLT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:03.000Z"}, "fanSpeed": {"type": "Property", "value": 2, "createdAt": "2026-12-07T15:10:59.426Z", "modifiedAt": "2026-12-07T15:10:59.426Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.440Z", "activePower": {"type": "Property", "value": 1550.0, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:04.000Z"}, "unitCode": "WTT", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}, "deviceState": {"type": "Property", "value": "ok", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}, "fanSpeed_info": {"type": "Property", "value": "PENDING", "createdAt": "2026-12-07T15:10:59.440Z", "modifiedAt": "2026-12-07T15:10:59.440Z", "observedAt": "2026-12-07T15:10:59.440Z"}, "fanSpeed_status": {"type": "Property", "value": "PENDING", "createdAt": "2026-12-07T15:10:59.440Z", "modifiedAt": "2026-12-07T15:10:59.440Z", "observedAt": "2026-12-07T15:10:59.440Z"}, "dateLastValueReported": {"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-27T12:00:04.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z"}}', 'gw-1', '2026-12-07 15:10:59.02973+00', '2026-12-07 15:10:59.44+00', NULL);
INSERT INTO ldt_legacy.entities VALUES ('urn:ngsi-ld:Device:gw-1:m1', 'Device', '{"id": "urn:ngsi-ld:Device:gw-1:m1", "type": "Device", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "deviceState": {"type": "Property", "value": "stale", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}, "temperature": {"type": "Property", "value": 22.6, "quality": {"type": "Property", "value": "stale", "observedAt": "2026-11-27T12:00:04.000Z"}, "unitCode": "CEL", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}, "operatingMode": {"type": "Property", "value": "manual", "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:02.500Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:02.500Z"}, "relativeHumidity": {"type": "Property", "value": 42, "quality": {"type": "Property", "value": "good", "observedAt": "2026-11-27T12:00:04.000Z"}, "unitCode": "P1", "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z", "observedAt": "2026-11-27T12:00:04.000Z"}, "dateLastValueReported": {"type": "Property", "value": {"@type": "DateTime", "@value": "2026-11-27T12:00:04.000Z"}, "createdAt": "2026-12-07T15:10:59.031Z", "modifiedAt": "2026-12-07T15:10:59.123Z"}}', 'gw-1', '2026-12-07 15:10:59.02973+00', '2026-12-07 15:10:59.122581+00', NULL);
INSERT INTO ldt_legacy.entities VALUES ('urn:ngsi-ld:Building:b2', 'Building', '{"id": "urn:ngsi-ld:Building:b2", "name": {"type": "Property", "value": "Depot South", "createdAt": "2026-12-07T15:10:59.155Z", "modifiedAt": "2026-12-07T15:10:59.155Z"}, "type": "Building", "floors": {"type": "Property", "value": 1, "createdAt": "2026-12-07T15:10:59.155Z", "modifiedAt": "2026-12-07T15:10:59.155Z"}, "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.605, 49.305]}, "createdAt": "2026-12-07T15:10:59.155Z", "modifiedAt": "2026-12-07T15:10:59.216Z"}, "createdAt": "2026-12-07T15:10:59.155Z", "modifiedAt": "2026-12-07T15:10:59.216Z"}', NULL, '2026-12-07 15:10:59.155+00', '2026-12-07 15:10:59.216+00', '(8.605,49.305),(8.605,49.305)');
INSERT INTO ldt_legacy.entities VALUES ('urn:ngsi-ld:Room:r1', 'Room', '{"id": "urn:ngsi-ld:Room:r1", "type": "Room", "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [8.6822, 49.4142]}, "createdAt": "2026-12-07T15:10:59.165Z", "modifiedAt": "2026-12-07T15:10:59.165Z"}, "createdAt": "2026-12-07T15:10:59.165Z", "modifiedAt": "2026-12-07T15:10:59.244Z", "refBuilding": {"type": "Relationship", "object": "urn:ngsi-ld:Building:b1", "createdAt": "2026-12-07T15:10:59.165Z", "modifiedAt": "2026-12-07T15:10:59.165Z"}, "temperature": [{"type": "Property", "value": 21.4, "unitCode": "CEL", "createdAt": "2026-12-07T15:10:59.165Z", "modifiedAt": "2026-12-07T15:10:59.236Z", "observedAt": "2026-11-27T12:02:00.000Z"}, {"type": "Property", "value": 20.9, "createdAt": "2026-12-07T15:10:59.244Z", "datasetId": "urn:ngsi-ld:Dataset:raw", "modifiedAt": "2026-12-07T15:10:59.244Z", "observedAt": "2026-11-27T12:02:00.000Z"}]}', NULL, '2026-12-07 15:10:59.165+00', '2026-12-07 15:10:59.244+00', '(8.6822,49.4142),(8.6822,49.4142)');
INSERT INTO ldt_legacy.entities VALUES ('urn:ngsi-ld:Vehicle:t1', 'Vehicle', '{"id": "urn:ngsi-ld:Vehicle:t1", "type": "Vehicle", "speed": {"type": "Property", "value": 100, "createdAt": "2026-12-07T15:10:59.273Z", "modifiedAt": "2026-12-07T15:10:59.273Z", "observedAt": "2020-09-01T12:07:00Z"}, "createdAt": "2026-12-07T15:10:59.273Z", "fuelLevel": [{"type": "Property", "value": 67, "createdAt": "2026-12-07T15:10:59.273Z", "modifiedAt": "2026-12-07T15:10:59.273Z", "observedAt": "2020-09-01T12:03:00Z"}, {"type": "Property", "value": 40, "createdAt": "2026-12-07T15:10:59.273Z", "datasetId": "urn:ngsi-ld:Dataset:fuel", "modifiedAt": "2026-12-07T15:10:59.273Z", "observedAt": "2020-09-01T14:07:00Z"}], "modifiedAt": "2026-12-07T15:10:59.273Z"}', NULL, '2026-12-07 15:10:59.273+00', '2026-12-07 15:10:59.273+00', NULL);


--
-- Data for Name: gateway_certificates; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.gateway_certificates VALUES ('274a3f22c922bcdbd2f92936ff8d01c26d46f674', 'gw-2', 'depot-north', 1796656259333, 1797261059326, NULL);


--
-- Data for Name: gateway_groups; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.gateway_groups VALUES ('north', 'gw-2');


--
-- Data for Name: gateway_status; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.gateway_status VALUES ('gw-1', 1796656259091, '0.9.0', 2, 1795780740000, -24);


--
-- Data for Name: gateways; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.gateways VALUES ('gw-1', '\x02829b53db05f6d297c3b9b4557427f42ada132edc408927fe93a69d40460fdf', '2026-12-07 15:10:59.012316+00');
INSERT INTO ldt_legacy.gateways VALUES ('gw-2', '\xe5163eba51bd0f47d472096f668e089fcd4bff3b6731aae73be70e767bbd0925', '2026-12-07 15:10:59.014951+00');


--
-- Data for Name: ldt_schema_version; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.ldt_schema_version VALUES (1);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (2);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (3);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (4);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (5);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (6);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (7);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (8);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (9);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (10);
INSERT INTO ldt_legacy.ldt_schema_version VALUES (11);


--
-- Data for Name: readings; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.readings VALUES ('gw-1', 101, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780800000, '1500.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 102, 'urn:ngsi-ld:Device:gw-1:m0', 'voltage', 1795780800000, '230.1', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 103, 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', 1795780800000, '21.5', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 104, 'urn:ngsi-ld:Device:gw-1:m1', 'relativeHumidity', 1795780800000, '40', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 105, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780800500, '1520.5', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 106, 'urn:ngsi-ld:Device:gw-1:m0', 'relayOn', 1795780800500, 'true', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 107, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780801000, '1490.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 108, 'urn:ngsi-ld:Device:gw-1:m0', 'voltage', 1795780801000, '229.8', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 109, 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', 1795780801000, '21.7', 'stale', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 110, 'urn:ngsi-ld:Device:gw-1:m1', 'operatingMode', 1795780801000, '"auto"', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 111, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780802000, '1600.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 112, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780802500, '1610.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 113, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780803000, NULL, 'bad', 'modbus timeout');
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 114, 'urn:ngsi-ld:Device:gw-1:m0', 'voltage', 1795780802000, '231.0', 'stale', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 115, 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', 1795780802000, '22.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 116, 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', 1795780802500, '22.4', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 117, 'urn:ngsi-ld:Device:gw-1:m1', 'relativeHumidity', 1795780802000, NULL, 'bad', 'CRC error');
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 118, 'urn:ngsi-ld:Device:gw-1:m0', 'relayOn', 1795780802500, 'false', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 119, 'urn:ngsi-ld:Device:gw-1:m1', 'operatingMode', 1795780802500, '"manual"', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 120, 'urn:ngsi-ld:Device:gw-1:m0', 'voltage', 1795780803000, '230.5', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 121, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780804000, '1550.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 122, 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', 1795780804000, '22.6', 'stale', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 123, 'urn:ngsi-ld:Device:gw-1:m1', 'relativeHumidity', 1795780804000, '42', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 124, 'urn:ngsi-ld:Device:gw-1:m0', 'relayOn', 1795780804000, 'true', 'bad', 'coil read failed');
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 1, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780740000, '1400.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 2, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780740500, '1405.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 3, 'urn:ngsi-ld:Device:gw-1:m0', 'activePower', 1795780741000, '1410.0', 'stale', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 4, 'urn:ngsi-ld:Device:gw-1:m0', 'voltage', 1795780740000, '229.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 5, 'urn:ngsi-ld:Device:gw-1:m1', 'temperature', 1795780740000, '21.0', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 6, 'urn:ngsi-ld:Device:gw-1:m1', 'relativeHumidity', 1795780740000, '38', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 7, 'urn:ngsi-ld:Device:gw-1:m1', 'operatingMode', 1795780740000, '"auto"', 'good', NULL);
INSERT INTO ldt_legacy.readings VALUES ('gw-1', 8, 'urn:ngsi-ld:Device:gw-1:m0', 'relayOn', 1795780741000, NULL, 'bad', 'timeout');


--
-- Data for Name: subscription_generation; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.subscription_generation VALUES (true, 1);


--
-- Data for Name: subscription_slots; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--



--
-- Data for Name: subscriptions; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.subscriptions VALUES ('urn:ngsi-ld:Subscription:legacy-1', '{"q": "floors>2", "id": "urn:ngsi-ld:Subscription:legacy-1", "type": "Subscription", "@context": "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld", "entities": [{"type": "Building"}], "createdAt": "2026-12-07T15:10:59.454Z", "modifiedAt": "2026-12-07T15:10:59.454Z", "notification": {"endpoint": {"uri": "http://127.0.0.1:9/notify", "accept": "application/json"}, "attributes": ["floors", "name"]}, "watchedAttributes": ["floors"]}', 0, 0, NULL, NULL, NULL);


--
-- Data for Name: temporal_entities; Type: TABLE DATA; Schema: ldt_legacy; Owner: -
--

INSERT INTO ldt_legacy.temporal_entities VALUES ('urn:ngsi-ld:Device:gw-1:m1', 'Device', '"Device"', 1796656259036, 1796656259127);
INSERT INTO ldt_legacy.temporal_entities VALUES ('urn:ngsi-ld:Building:b1', 'Building', '"Building"', 1796656259151, 1796656259202);
INSERT INTO ldt_legacy.temporal_entities VALUES ('urn:ngsi-ld:Building:b2', 'Building', '"Building"', 1796656259158, 1796656259222);
INSERT INTO ldt_legacy.temporal_entities VALUES ('urn:ngsi-ld:Room:r1', 'Room', '"Room"', 1796656259167, 1796656259248);
INSERT INTO ldt_legacy.temporal_entities VALUES ('urn:ngsi-ld:Building:b3', 'Building', '"Building"', 1796656259173, 1796656259256);
INSERT INTO ldt_legacy.temporal_entities VALUES ('urn:ngsi-ld:Vehicle:t1', 'Vehicle', '"Vehicle"', 1796656259288, 1796656259301);
INSERT INTO ldt_legacy.temporal_entities VALUES ('urn:ngsi-ld:Device:gw-1:m0', 'Device', '"Device"', 1796656259036, 1796656259444);


--
-- Name: audit_log_id_seq; Type: SEQUENCE SET; Schema: ldt_legacy; Owner: -
--

SELECT pg_catalog.setval('ldt_legacy.audit_log_id_seq', 6, true);


--
-- Name: artifacts artifacts_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.artifacts
    ADD CONSTRAINT artifacts_pkey PRIMARY KEY (kind, name, version);


--
-- Name: assignments assignments_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.assignments
    ADD CONSTRAINT assignments_pkey PRIMARY KEY (kind, name, target);


--
-- Name: attr_instances attr_instances_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.attr_instances
    ADD CONSTRAINT attr_instances_pkey PRIMARY KEY (instance_id);


--
-- Name: audit_log audit_log_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.audit_log
    ADD CONSTRAINT audit_log_pkey PRIMARY KEY (id);


--
-- Name: catalogue catalogue_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.catalogue
    ADD CONSTRAINT catalogue_pkey PRIMARY KEY (kind, name, version);


--
-- Name: claim_tokens claim_tokens_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.claim_tokens
    ADD CONSTRAINT claim_tokens_pkey PRIMARY KEY (token_sha256);


--
-- Name: command_points command_points_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.command_points
    ADD CONSTRAINT command_points_pkey PRIMARY KEY (entity_id, attr);


--
-- Name: commands commands_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.commands
    ADD CONSTRAINT commands_pkey PRIMARY KEY (id);


--
-- Name: csource_registrations csource_registrations_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.csource_registrations
    ADD CONSTRAINT csource_registrations_pkey PRIMARY KEY (id);


--
-- Name: entities entities_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.entities
    ADD CONSTRAINT entities_pkey PRIMARY KEY (id);


--
-- Name: gateway_certificates gateway_certificates_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.gateway_certificates
    ADD CONSTRAINT gateway_certificates_pkey PRIMARY KEY (serial);


--
-- Name: gateway_groups gateway_groups_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.gateway_groups
    ADD CONSTRAINT gateway_groups_pkey PRIMARY KEY (group_name, gateway_id);


--
-- Name: gateway_status gateway_status_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.gateway_status
    ADD CONSTRAINT gateway_status_pkey PRIMARY KEY (gateway_id);


--
-- Name: gateways gateways_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.gateways
    ADD CONSTRAINT gateways_pkey PRIMARY KEY (id);


--
-- Name: gateways gateways_token_sha256_key; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.gateways
    ADD CONSTRAINT gateways_token_sha256_key UNIQUE (token_sha256);


--
-- Name: readings readings_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.readings
    ADD CONSTRAINT readings_pkey PRIMARY KEY (gateway_id, seq);


--
-- Name: subscription_generation subscription_generation_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.subscription_generation
    ADD CONSTRAINT subscription_generation_pkey PRIMARY KEY (one);


--
-- Name: subscription_slots subscription_slots_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.subscription_slots
    ADD CONSTRAINT subscription_slots_pkey PRIMARY KEY (id);


--
-- Name: subscriptions subscriptions_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.subscriptions
    ADD CONSTRAINT subscriptions_pkey PRIMARY KEY (id);


--
-- Name: temporal_entities temporal_entities_pkey; Type: CONSTRAINT; Schema: ldt_legacy; Owner: -
--

ALTER TABLE ONLY ldt_legacy.temporal_entities
    ADD CONSTRAINT temporal_entities_pkey PRIMARY KEY (id);


--
-- Name: artifact_reports_by_gateway; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX artifact_reports_by_gateway ON ldt_legacy.artifact_reports USING btree (gateway_id, at_ms);


--
-- Name: attr_instances_by_deleted; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX attr_instances_by_deleted ON ldt_legacy.attr_instances USING btree (entity_id, attr, deleted_at_ms) WHERE (deleted_at_ms IS NOT NULL);


--
-- Name: attr_instances_by_modified; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX attr_instances_by_modified ON ldt_legacy.attr_instances USING btree (entity_id, attr, modified_at_ms);


--
-- Name: attr_instances_by_observed; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX attr_instances_by_observed ON ldt_legacy.attr_instances USING btree (entity_id, attr, observed_at_ms);


--
-- Name: audit_log_by_time; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX audit_log_by_time ON ldt_legacy.audit_log USING btree (at_ms);


--
-- Name: commands_open; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX commands_open ON ldt_legacy.commands USING btree (gateway_id, status, created_at_ms);


--
-- Name: entities_by_location; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX entities_by_location ON ldt_legacy.entities USING gist (location_box);


--
-- Name: entities_by_type; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX entities_by_type ON ldt_legacy.entities USING btree (type, id);


--
-- Name: entities_multi_typed; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX entities_multi_typed ON ldt_legacy.entities USING btree (id) WHERE (jsonb_typeof((doc -> 'type'::text)) = 'array'::text);


--
-- Name: gateway_certificates_by_gateway; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX gateway_certificates_by_gateway ON ldt_legacy.gateway_certificates USING btree (gateway_id, not_after_ms);


--
-- Name: readings_by_attr; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX readings_by_attr ON ldt_legacy.readings USING btree (entity_id, attr, observed_at_ms);


--
-- Name: temporal_entities_by_type; Type: INDEX; Schema: ldt_legacy; Owner: -
--

CREATE INDEX temporal_entities_by_type ON ldt_legacy.temporal_entities USING btree (type, id);


--
-- PostgreSQL database dump complete
--


