-- U9: undo V9__create_notifications_table.sql.
DROP TABLE notifications;
