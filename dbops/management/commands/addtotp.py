"""`manage.py addtotp USER`: enroll a staff user's authenticator app (TOTP) for the admin."""

from __future__ import annotations

from base64 import b32encode
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import CommandError, CommandParser
from django.db import transaction

from dbops.signin.twofactor import add_device
from sqlmigrations.management.base import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Create a TOTP device for a staff user and print its otpauth:// URI and secret "
        "once, for the user's authenticator app. The admin asks for its tokens when "
        "ADMIN_REQUIRE_2FA is on (production)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="the staff user's user name")
        parser.add_argument("--name", default="authenticator", help="the device's name")
        parser.add_argument(
            "--replace",
            action="store_true",
            help="delete the user's other TOTP devices first (a lost or new phone)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        username = options["username"]
        try:
            user = user_model.objects.get(**{user_model.USERNAME_FIELD: username})
        except user_model.DoesNotExist:
            raise CommandError(
                f"No user {username!r}: create it first (`manage.py createsuperuser`)."
            ) from None
        if not user.is_staff:
            raise CommandError(
                f"{username!r} is not staff: only staff sign in to the admin; make the "
                "user staff first."
            )
        with transaction.atomic():
            device = add_device(user, options["name"], replace=options["replace"])
        self.stdout.write(
            f"Added TOTP device {device.name!r} for {username}. Scan this URI into the "
            "authenticator app (or type the secret); it is not shown again:\n"
            f"{device.config_url}\nsecret: {b32encode(device.bin_key).decode()}"
        )
