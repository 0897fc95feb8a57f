-- U7: undo V7__create_assignments_table.sql.
DROP TABLE assignments;
DROP FUNCTION choregarden_check_assignment_status();
