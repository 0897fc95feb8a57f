from django.apps import AppConfig
from django.db.models.signals import post_migrate


class DbopsConfig(AppConfig):
    name = "dbops"
    verbose_name = "Database operations"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dbops import checks  # noqa: F401  (registers the system checks)
        from dbops.receivers import protect_migration_history

        post_migrate.connect(protect_migration_history, sender=self)
