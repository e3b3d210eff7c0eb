-- Team knowledge, the SQLite schema's m003 in PostgreSQL's terms: the same plain tables, with full-text search as a
-- generated tsvector column on `chunks` and a GIN index standing in for SQLite's FTS5 table. Vectors stay on
-- SQLite (no vector extension is assumed here): `chunk_embeddings` exists so both schemas match, and stays empty.
CREATE TABLE documents (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- in byte order, as on SQLite: the same listing order, and a prefix is a range of the unique index
    source TEXT COLLATE "C" NOT NULL UNIQUE,
    kind TEXT NOT NULL CHECK (kind IN ('message', 'file', 'local', 'verified')),
    platform TEXT NOT NULL,
    workspace TEXT NOT NULL,
    channel TEXT NOT NULL,
    visibility TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    title TEXT NOT NULL,
    author TEXT NOT NULL DEFAULT '',
    created_at DOUBLE PRECISION NOT NULL,
    link TEXT NOT NULL DEFAULT '',
    thread TEXT NOT NULL DEFAULT '',
    digest TEXT NOT NULL,
    chars INTEGER NOT NULL,
    indexed_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX documents_channel ON documents (platform, workspace, channel);

CREATE TABLE chunks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    document_id BIGINT NOT NULL REFERENCES documents (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    search tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
);
CREATE INDEX chunks_document ON chunks (document_id);
CREATE INDEX chunks_search ON chunks USING GIN (search);

CREATE TABLE chunk_embeddings (
    chunk_id BIGINT PRIMARY KEY REFERENCES chunks (id) ON DELETE CASCADE,
    vector BYTEA NOT NULL
);

CREATE TABLE backfill_cursors (
    platform TEXT NOT NULL,
    workspace TEXT NOT NULL,
    channel TEXT NOT NULL,
    cursor TEXT NOT NULL DEFAULT '',
    done INTEGER NOT NULL DEFAULT 0,
    messages INTEGER NOT NULL DEFAULT 0,
    oldest DOUBLE PRECISION NOT NULL DEFAULT 0,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (platform, workspace, channel)
);

CREATE TABLE knowledge_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE run_sources (
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    number INTEGER NOT NULL,
    chunk_id BIGINT NOT NULL,
    source TEXT NOT NULL,
    title TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    link TEXT NOT NULL,
    score DOUBLE PRECISION NOT NULL,
    cited INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (run_id, number)
);

-- a reaction on an answer names its message: find the run by its placeholder
CREATE INDEX runs_placeholder_message ON runs ((placeholder::jsonb ->> 'message'));
