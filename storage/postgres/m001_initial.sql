-- The SQLite schema's m001 in PostgreSQL's types. Times are unix seconds (as on SQLite), so both backends hand
-- the same values to the bot and `moa-bot db migrate-to` copies them as they are.
CREATE TABLE conversations (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    platform TEXT NOT NULL,
    workspace TEXT NOT NULL,
    channel TEXT NOT NULL,
    thread TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (platform, workspace, channel, thread)
);
CREATE INDEX conversations_updated ON conversations (updated_at);

CREATE TABLE messages (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('user', 'assistant')),
    content TEXT NOT NULL,
    run_id TEXT,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX messages_conversation ON messages (conversation_id, id);

CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    user_id TEXT NOT NULL,
    event_id TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    preset TEXT NOT NULL,
    status TEXT NOT NULL,
    placeholder TEXT NOT NULL DEFAULT '{}',
    answer TEXT NOT NULL DEFAULT '',
    error TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    finished_at DOUBLE PRECISION,
    elapsed_s DOUBLE PRECISION,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX runs_status ON runs (status);
CREATE INDEX runs_conversation ON runs (conversation_id);

CREATE TABLE proposals (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    layer INTEGER NOT NULL,
    model TEXT NOT NULL,
    text TEXT NOT NULL DEFAULT '',
    latency_s DOUBLE PRECISION NOT NULL,
    prompt_tokens BIGINT NOT NULL DEFAULT 0,
    completion_tokens BIGINT NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    straggler BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX proposals_run ON proposals (run_id);

CREATE TABLE processed_events (
    platform TEXT NOT NULL,
    event_id TEXT NOT NULL,
    seen_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, event_id)
);
CREATE INDEX processed_events_seen ON processed_events (seen_at);
