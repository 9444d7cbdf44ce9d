-- The tables the streaming job writes. Each has a key built from the source position of what it
-- describes, so that replaying the same input upserts the same rows instead of adding new ones.

CREATE TABLE window_stats (
    window_id       TEXT PRIMARY KEY,          -- key and position of the window's first record
    key             TEXT NOT NULL,             -- transaction type, or type/shard
    first_row       BIGINT NOT NULL,           -- position of the first record (row or offset)
    last_row        BIGINT NOT NULL,
    first_partition INTEGER,                   -- Kafka partitions of those records; NULL for files
    last_partition  INTEGER,
    source          TEXT NOT NULL,             -- file path, or topic
    row_count       INTEGER NOT NULL,
    drifted         BOOLEAN NOT NULL,
    drift_score     DOUBLE PRECISION NOT NULL,
    reference_size  INTEGER NOT NULL,
    config_version  TEXT NOT NULL,
    evaluated_at    TIMESTAMPTZ NOT NULL,
    statistics      JSONB NOT NULL
);
CREATE INDEX window_stats_key_time ON window_stats (key, evaluated_at);

CREATE TABLE drift_events (
    window_id       TEXT PRIMARY KEY,
    key             TEXT NOT NULL,
    first_row       BIGINT NOT NULL,
    last_row        BIGINT NOT NULL,
    first_partition INTEGER,
    last_partition  INTEGER,
    source          TEXT NOT NULL,
    drift_score     DOUBLE PRECISION NOT NULL,
    drifted_features TEXT NOT NULL,            -- comma-separated, for quick reading in psql
    config_version  TEXT NOT NULL,
    detected_at     TIMESTAMPTZ NOT NULL,
    explanation     JSONB NOT NULL             -- scores, thresholds applied, quantiles, bins
);
CREATE INDEX drift_events_key_time ON drift_events (key, detected_at);

CREATE TABLE flagged_transactions (
    transaction_id    TEXT PRIMARY KEY,        -- from the record, or source and position
    key               TEXT NOT NULL,
    source            TEXT NOT NULL,           -- file path, or topic
    type              TEXT NOT NULL,
    amount            DOUBLE PRECISION NOT NULL,
    name_orig         TEXT NOT NULL,
    name_dest         TEXT NOT NULL,
    risk_score        DOUBLE PRECISION NOT NULL,
    drift_score       DOUBLE PRECISION NOT NULL,
    model_probability DOUBLE PRECISION NOT NULL,
    rule_score        DOUBLE PRECISION NOT NULL,
    reasons           JSONB NOT NULL,
    model_version     TEXT NOT NULL,
    is_fraud          BOOLEAN,                 -- the label, when the record carries one
    flagged_at        TIMESTAMPTZ NOT NULL
);
CREATE INDEX flagged_transactions_key_time ON flagged_transactions (key, flagged_at);
