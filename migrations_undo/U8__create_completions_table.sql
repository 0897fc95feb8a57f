-- U8: undo V8__create_completions_table.sql (drops every partition with the table).
DROP TABLE completions;
DROP FUNCTION choregarden_create_completion_partitions(date, date);
