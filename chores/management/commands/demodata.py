"""`manage.py demodata`: fill the development database with demo households and chores."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError

from chores import demo
from sqlmigrations.redact import redact


class Command(BaseCommand):
    help = (
        "Create demo users, households, tasks, assignments and completions (idempotent: "
        "what exists is left alone). Refused in production."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the counts as JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        if getattr(settings, "PRODUCTION", False):
            raise CommandError("demodata refuses to run with DJANGO_ENV=production.")
        try:
            made = demo.load()
        except DatabaseError as err:
            raise CommandError(
                f"Could not write the demo data: {redact(str(err))}. Run `manage.py migrate` first."
            ) from err
        if options["json"]:
            self.stdout.write(json.dumps({"created": made}))
        else:
            self.stdout.write(f"Done! Demo data: {demo.describe(made)}.")
