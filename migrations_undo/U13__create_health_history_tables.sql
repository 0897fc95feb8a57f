-- U13: undo V13__create_health_history_tables.sql (the recorded history is lost).

DROP TABLE health_statement_samples;
DROP TABLE health_snapshots;
