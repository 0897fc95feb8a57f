-- V11: the admin lists profiles newest first; without an index that is a sort of the
-- whole users table for every page. Built CONCURRENTLY (the table already holds data in
-- production), so this file runs outside a transaction (V11__index_users_created_at.sql.conf)
-- and holds this one statement: a half-applied non-transactional file cannot be re-run.
-- Rollback: U11__index_users_created_at.sql.

CREATE INDEX CONCURRENTLY IF NOT EXISTS users_created_at ON users (created_at DESC);
