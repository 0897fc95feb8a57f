from django.apps import AppConfig


class SqlMigrationsConfig(AppConfig):
    """The Flyway-compatible migration engine: SQL files run by `manage.py migrate`."""

    name = "sqlmigrations"
    verbose_name = "SQL migrations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sqlmigrations import checks  # noqa: F401  (registers the system checks)
