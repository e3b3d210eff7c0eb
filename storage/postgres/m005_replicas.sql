-- Several replicas on one database: who answers each run (the replica's id; '' once handed over), each
-- replica's heartbeat (by the database's clock, which every replica shares), and the questions each person asked
-- lately (one row a question, for the per-user rate every replica counts against).
ALTER TABLE runs ADD COLUMN owner TEXT NOT NULL DEFAULT '';

CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    started_at DOUBLE PRECISION NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE rates (
    bucket TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX rates_bucket ON rates (bucket, at);
