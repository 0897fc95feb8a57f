-- U3: undo V3__create_households_table.sql.
DROP TABLE households;
