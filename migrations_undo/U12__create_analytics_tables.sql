-- U12: undo V12__create_analytics_tables.sql (the rollups can be rebuilt with
-- `manage.py analytics refresh --full` after V12 is applied again).

DROP TABLE analytics_refresh_state;
DROP TABLE service_daily_stats;
DROP TABLE member_daily_stats;
DROP TABLE household_daily_stats;
