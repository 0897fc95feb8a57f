"""Settings refuse unsafe production configurations, naming the variable and the fix."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO

SECRET_PASSWORD = "s3cr3t-Pa55word-do-not-print"
PROD = {
    "DJANGO_ENV": "production",
    "DEBUG": "false",
    "SECRET_KEY": "x" * 50,
    "ALLOWED_HOSTS": "admin.example.com",
    "DATABASE_URL": f"postgres://choregarden:{SECRET_PASSWORD}@db.example.com:5432/prod",
    "DB_SSLMODE": "verify-full",
    "DB_SSLROOTCERT": "/etc/ssl/rds-global-bundle.pem",
}


def load_settings(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DJANGO_"))}
    env.pop("DATABASE_URL", None)
    env.update(PROD)
    env["ENV_FILE"] = "/nonexistent/.env"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DJANGO_ENV)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "choregarden.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_it_accepts_a_safe_production_configuration() -> None:
    proc = load_settings()
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "production"


@pytest.mark.parametrize(
    ("overrides", "variable", "fix"),
    [
        ({"DEBUG": "true"}, "DEBUG", "DEBUG=false"),
        ({"SECRET_KEY": None}, "SECRET_KEY", "set SECRET_KEY"),
        ({"DB_SSLMODE": "require"}, "DATABASE_URL", "DB_SSLMODE=verify-full"),
        ({"DB_SSLMODE": "disable"}, "DATABASE_URL", "DB_SSLMODE=verify-full"),
        (
            {"DATABASE_URL": PROD["DATABASE_URL"] + "?sslmode=prefer"},
            "DATABASE_URL",
            "remove sslmode from the URL",
        ),
        ({"DB_SSLROOTCERT": None}, "DB_SSLROOTCERT", "RDS CA bundle"),
        ({"DATABASE_URL": None}, "DATABASE_URL", "set it"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS", "set ALLOWED_HOSTS"),
        ({"DJANGO_ENV": "staging"}, "DJANGO_ENV", "set DJANGO_ENV"),
        ({"DEBUG": "maybe"}, "DEBUG", "true or false"),
        ({"DB_POOL_MAX_SIZE": "abc"}, "DB_POOL_MAX_SIZE", "whole number"),
        ({"DB_POOL_MIN_SIZE": "30"}, "DB_POOL_MIN_SIZE", "DB_POOL_MAX_SIZE"),
        ({"DATABASE_URL": f"mysql://u:{SECRET_PASSWORD}@h/db"}, "DATABASE_URL", "postgres://"),
    ],
)
def test_it_refuses_unsafe_production_settings(
    overrides: dict[str, str | None], variable: str, fix: str
) -> None:
    proc = load_settings(**overrides)
    assert proc.returncode != 0
    last_line = proc.stderr.strip().splitlines()[-1]
    assert "ImproperlyConfigured" in last_line
    assert variable in last_line
    assert fix in last_line
    assert SECRET_PASSWORD not in proc.stderr + proc.stdout


def test_it_applies_the_production_pool_sizes_by_default() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['OPTIONS']['pool'])",
        ],
        cwd=REPO,
        env={**os.environ, **PROD, "DJANGO_SETTINGS_MODULE": "choregarden.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "'min_size': 10" in proc.stdout
    assert "'max_size': 20" in proc.stdout


def test_development_pool_defaults_are_5_to_10() -> None:
    from choregarden import settings

    if "DB_POOL_MIN_SIZE" in os.environ or "DB_POOL_MAX_SIZE" in os.environ:
        pytest.fail("unset DB_POOL_MIN_SIZE/DB_POOL_MAX_SIZE to run this test")
    assert (settings.DB_POOL_MIN_SIZE, settings.DB_POOL_MAX_SIZE) == (5, 10)
