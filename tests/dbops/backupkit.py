"""Helpers of the backup tests (their fixtures are in conftest.py)."""

from __future__ import annotations

from io import StringIO
from typing import Any

from django.core.files.storage import FileSystemStorage
from django.core.management import call_command

from dbops.connections.config import ConnInfo

ENV = "test"


def target_for(pg_server: Any, dbname: str) -> ConnInfo:
    return pg_server.conninfo(dbname)


def storages_with(storage: FileSystemStorage) -> dict:
    from django.conf import settings

    return {
        **settings.STORAGES,
        "backups": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(storage.location)},
        },
    }


def run(*args: str) -> str:
    """`manage.py backup ARGS` in this process; return what it printed."""
    out = StringIO()
    call_command("backup", *args, stdout=out)
    return out.getvalue()
