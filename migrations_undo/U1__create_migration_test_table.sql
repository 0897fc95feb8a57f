-- U1: undo V1__create_migration_test_table.sql.
DROP TABLE migration_test;
