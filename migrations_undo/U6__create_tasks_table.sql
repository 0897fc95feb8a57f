-- U6: undo V6__create_tasks_table.sql.
DROP TABLE tasks;
