-- Undo of V11: drop the index without blocking writes (outside a transaction, see .conf).
DROP INDEX CONCURRENTLY IF EXISTS users_created_at;
