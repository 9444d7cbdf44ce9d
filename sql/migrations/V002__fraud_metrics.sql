-- Detection quality against the labels that come with the transactions. Each window's own
-- metrics sit beside its drift verdict; fraud_metrics holds the running totals of each source
-- (topic or file) and of each transaction type in it, rewritten by the job after every window.

ALTER TABLE window_stats
    ADD COLUMN labelled   INTEGER,                 -- transactions that carried a label
    ADD COLUMN frauds     INTEGER,
    ADD COLUMN flagged    INTEGER,
    ADD COLUMN accuracy   DOUBLE PRECISION,        -- NULL where undefined: no label, no flag,
    ADD COLUMN precision  DOUBLE PRECISION,        -- no fraud
    ADD COLUMN recall     DOUBLE PRECISION,
    ADD COLUMN f1         DOUBLE PRECISION,
    ADD COLUMN auprc      DOUBLE PRECISION,
    ADD COLUMN model_version TEXT;

CREATE TABLE fraud_metrics (
    source          TEXT NOT NULL,             -- topic, or file path
    scope           TEXT NOT NULL,             -- 'all', or 'type:' and a transaction type
    windows         BIGINT NOT NULL,
    labelled        BIGINT NOT NULL,
    frauds          BIGINT NOT NULL,
    flagged         BIGINT NOT NULL,
    true_positives  BIGINT NOT NULL,
    false_positives BIGINT NOT NULL,
    false_negatives BIGINT NOT NULL,
    true_negatives  BIGINT NOT NULL,
    accuracy        DOUBLE PRECISION,
    precision       DOUBLE PRECISION,
    recall          DOUBLE PRECISION,
    f1              DOUBLE PRECISION,
    auprc           DOUBLE PRECISION,          -- from risk scores binned at 0.001
    model_version   TEXT NOT NULL,
    config_version  TEXT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source, scope)
);
