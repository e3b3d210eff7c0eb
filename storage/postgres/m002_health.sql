-- one row the health probe rewrites: a committed write is the only proof that the database takes data
CREATE TABLE health (id INTEGER PRIMARY KEY CHECK (id = 1), checked_at DOUBLE PRECISION NOT NULL);
