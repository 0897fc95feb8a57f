from django.apps import AppConfig


class DbopsConfig(AppConfig):
    name = "dbops"
    verbose_name = "Database operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dbops import checks, migration_checks  # noqa: F401  (registers the system checks)
