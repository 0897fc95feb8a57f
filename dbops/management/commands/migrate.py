"""`migrate`, run as the owner role when MIGRATION_DATABASE_URL is set."""

from __future__ import annotations

from typing import Any

from django.core.management.commands.migrate import Command as DjangoMigrate

from dbops.connections import use_migration_role


class Command(DjangoMigrate):
    def handle(self, *args: Any, **options: Any) -> None:
        use_migration_role(options["database"])
        super().handle(*args, **options)
