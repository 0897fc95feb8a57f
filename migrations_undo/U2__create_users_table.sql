-- U2: undo V2__create_users_table.sql. pg_trgm stays: other objects may use it.
DROP TABLE users;
DROP FUNCTION choregarden_set_updated_at();
