"""Load the project's settings in a fresh process with a given environment, as deploys do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.helpers import REPO

# A production environment the settings accept, but for the database (each test adds it).
PRODUCTION = {
    "DJANGO_ENV": "production",
    "DEBUG": "false",
    "SECRET_KEY": "Qm7kV2pX9wL4tR8zN3cJ6hB1yF5dG0sA-production-key-for-tests-only",
    "ALLOWED_HOSTS": "admin.example.com",
    "DB_SSLROOTCERT": "/etc/ssl/rds-global-bundle.pem",
    "AWS_REGION": "eu-west-1",
}
_PRINT = (
    "import json, django; django.setup(); from django.conf import settings as s; "
    "print(json.dumps({'databases': s.DATABASES, 'owner': s.DATABASES['owner']}, default=str))"
)


def load_database_settings(**env: str) -> subprocess.CompletedProcess[str]:
    """Import the settings with only `env` set for the database; print DATABASES as JSON."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DJANGO_"))}
    for key in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REPLICA_DATABASE_URL"):
        base.pop(key, None)
    return subprocess.run(
        [sys.executable, "-c", _PRINT],
        cwd=REPO,
        env={
            **base,
            "ENV_FILE": "/nonexistent/.env",
            "DJANGO_SETTINGS_MODULE": "choregarden.settings",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def parsed(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)
