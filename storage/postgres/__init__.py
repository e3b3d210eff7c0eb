"""PostgreSQL storage: the same contract as the SQLite store, for several processes on one database."""
