-- U4: undo V4__create_household_members_table.sql.
DROP TRIGGER households_has_owner ON households;
DROP TABLE household_members;
DROP FUNCTION choregarden_check_household_owner();
