"""`manage.py demodata`: fill the development database with demo households and chores."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser

from chores import demo
from sqlmigrations.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Create demo users, households, tasks, assignments and completions (idempotent: "
        "what exists is left alone). Refused in production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if getattr(settings, "PRODUCTION", False):
            raise CommandError("demodata refuses to run with DJANGO_ENV=production.")
        made = demo.load()
        if options["json"]:
            self.stdout.write(json.dumps({"created": made}))
        else:
            self.stdout.write(f"Done! Demo data: {demo.describe(made)}.")
