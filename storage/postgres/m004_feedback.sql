-- 👍/👎 on an answer: one per person and run (a second click replaces the first)
CREATE TABLE feedback (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    value TEXT NOT NULL CHECK (value IN ('up', 'down')),
    at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, user_id)
);
