-- callcoach schema, PostgreSQL flavour. The SQLite migration of the same name has the same
-- tables, columns and indexes; only the types differ (BIGINT for INTEGER, DOUBLE PRECISION
-- for REAL, BOOLEAN for the 0/1 feedback flag, identity columns for AUTOINCREMENT).
--
-- Conventions shared by both backends (the store runs the same SQL text on each):
-- * timestamps are BIGINT milliseconds since the Unix epoch (one representation that compares
--   and indexes identically on both; the API renders RFC 3339);
-- * ids chosen by the outside world (lead ids from the CRM, call ids from the softphone or
--   Twilio's CallSid) are TEXT and scoped by tenant: two tenants may use the same lead id;
-- * JSON documents (attributes, contributions, payloads) are TEXT holding JSON;
-- * PII never reaches this file unredacted: utterance text is redacted before it is written.

CREATE TABLE tenants (
    id          TEXT PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE users (
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id          TEXT NOT NULL,
    name        TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('agent', 'supervisor', 'admin')),
    team        TEXT,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

-- Per-tenant keys for softphones and Twilio, which cannot always present a JWT. Only the
-- SHA-256 of the secret part is kept.
CREATE TABLE ingest_keys (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    key_hash    TEXT NOT NULL UNIQUE,
    label       TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX ingest_keys_by_tenant ON ingest_keys (tenant_id, created_at);

CREATE TABLE leads (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    email           TEXT,
    phone           TEXT,
    company         TEXT,
    source          TEXT,
    owner_id        TEXT,
    team            TEXT,
    stage           TEXT NOT NULL DEFAULT 'new'
                    CHECK (stage IN ('new', 'contacted', 'engaged', 'qualified', 'won', 'nurture', 'lost')),
    score           DOUBLE PRECISION,
    -- score last sent to the CRM through the outbox (decides when a new score is worth sending)
    crm_score       DOUBLE PRECISION,
    prior_contacts  BIGINT NOT NULL DEFAULT 0,
    last_contact_at BIGINT,
    attributes      TEXT NOT NULL DEFAULT '{}',
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
-- listing/paging newest first, per tenant, per owner (agents) and per team (supervisors)
CREATE INDEX leads_by_created ON leads (tenant_id, created_at, id);
CREATE INDEX leads_by_owner ON leads (tenant_id, owner_id, created_at, id);
CREATE INDEX leads_by_team ON leads (tenant_id, team, created_at, id);

CREATE TABLE calls (
    tenant_id   TEXT NOT NULL,
    id          TEXT NOT NULL,
    lead_id     TEXT,
    agent_id    TEXT NOT NULL,
    team        TEXT,
    origin      TEXT NOT NULL DEFAULT 'live' CHECK (origin IN ('live', 'upload')),
    started_at  BIGINT NOT NULL,
    ended_at    BIGINT,
    end_reason  TEXT,
    talk_stats  TEXT,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);
-- hot read: a lead's calls by time
CREATE INDEX calls_by_lead ON calls (tenant_id, lead_id, started_at);
CREATE INDEX calls_by_agent ON calls (tenant_id, agent_id, started_at);
CREATE INDEX calls_by_started ON calls (started_at);

CREATE TABLE utterances (
    tenant_id   TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    track       TEXT NOT NULL CHECK (track IN ('agent', 'customer', 'mixed')),
    start_ms    BIGINT NOT NULL,
    end_ms      BIGINT NOT NULL,
    text        TEXT NOT NULL,
    sentiment   DOUBLE PRECISION,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, call_id, seq),
    FOREIGN KEY (tenant_id, call_id) REFERENCES calls (tenant_id, id) ON DELETE CASCADE
);
-- hot read: a call's utterances by time; retention purge by age
CREATE INDEX utterances_by_time ON utterances (tenant_id, call_id, start_ms);
CREATE INDEX utterances_by_created ON utterances (created_at);

CREATE TABLE hints (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    call_id     TEXT NOT NULL,
    rule        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    priority    TEXT NOT NULL,
    title       TEXT NOT NULL,
    body        TEXT NOT NULL,
    reason      TEXT NOT NULL,
    evidence    TEXT NOT NULL DEFAULT '[]',
    at_ms       BIGINT NOT NULL,
    created_at  BIGINT NOT NULL,
    useful      BOOLEAN,
    feedback_by TEXT,
    feedback_at BIGINT,
    FOREIGN KEY (tenant_id, call_id) REFERENCES calls (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX hints_by_call ON hints (tenant_id, call_id, at_ms);

CREATE TABLE score_events (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    lead_id         TEXT NOT NULL,
    call_id         TEXT,
    score           DOUBLE PRECISION,
    stage           TEXT NOT NULL,
    prev_stage      TEXT NOT NULL,
    reason          TEXT NOT NULL,
    contributions   TEXT NOT NULL DEFAULT '[]',
    created_at      BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);
-- hot read: a lead's score history by time
CREATE INDEX score_events_by_lead ON score_events (tenant_id, lead_id, created_at);

CREATE TABLE outbox (
    id              BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    lead_id         TEXT NOT NULL,
    kind            TEXT NOT NULL,
    payload         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    delivered_at    BIGINT,
    last_error      TEXT,
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);
-- hot read: the dispatcher's "what is due" scan touches only undelivered rows
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX outbox_by_lead ON outbox (tenant_id, lead_id);

-- No foreign keys: the audit trail outlives what it describes (erasures included).
CREATE TABLE audit_log (
    id          BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    actor       TEXT NOT NULL,
    role        TEXT NOT NULL,
    action      TEXT NOT NULL,
    target_kind TEXT NOT NULL,
    target_id   TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}',
    ip          TEXT,
    at          BIGINT NOT NULL
);
CREATE INDEX audit_by_actor ON audit_log (tenant_id, actor, at);
CREATE INDEX audit_by_time ON audit_log (tenant_id, at);

-- Recorded calls uploaded for post-call analysis; the server's pipeline advances the status.
CREATE TABLE upload_jobs (
    id          TEXT PRIMARY KEY NOT NULL,
    tenant_id   TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    team        TEXT,
    lead_id     TEXT,
    call_id     TEXT,
    filename    TEXT NOT NULL,
    path        TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    progress    DOUBLE PRECISION NOT NULL DEFAULT 0,
    error       TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    FOREIGN KEY (tenant_id, lead_id) REFERENCES leads (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX upload_jobs_by_tenant ON upload_jobs (tenant_id, created_at);
CREATE INDEX upload_jobs_by_lead ON upload_jobs (tenant_id, lead_id);
