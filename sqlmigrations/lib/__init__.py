"""Read Flyway-compatible SQL migration files without touching a database or Django."""
