from django.apps import AppConfig


class ChoresConfig(AppConfig):
    name = "chores"
    verbose_name = "Households and chores"
    default_auto_field = "django.db.models.BigAutoField"
