from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    # Not "User profiles": that is the model's own name, and the breadcrumbs show both.
    verbose_name = "Profiles"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts import checks  # noqa: F401  (registers the system checks)
