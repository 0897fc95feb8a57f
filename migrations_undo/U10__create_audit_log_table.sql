-- U10: undo V10__create_audit_log_table.sql.
DROP TRIGGER users_audit ON users;
DROP TRIGGER households_audit ON households;
DROP TRIGGER household_members_audit ON household_members;
DROP TRIGGER task_templates_audit ON task_templates;
DROP TRIGGER tasks_audit ON tasks;
DROP TRIGGER assignments_audit ON assignments;
DROP TRIGGER completions_audit ON completions;
DROP FUNCTION choregarden_audit();
DROP TABLE audit_log;
DROP FUNCTION choregarden_audit_log_guard();
