-- U5: undo V5__create_task_templates_table.sql.
DROP TABLE task_templates;
