"""Web hardening: `check --deploy` is clean in production; admin sign-in is throttled."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest
from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.test import Client

from tests.helpers import REPO

# The CA bundle must exist (dbops.E009); its content is not read by `check`.
CA_BUNDLE = Path(tempfile.mkdtemp(prefix="hardening-")) / "rds-global-bundle.pem"
CA_BUNDLE.write_text("-----BEGIN CERTIFICATE-----\n")

PRODUCTION_ENV = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": "k" * 30 + "-production-only-" + "q" * 30,
    "ALLOWED_HOSTS": "admin.choregarden.app",
    "CSRF_TRUSTED_ORIGINS": "https://admin.choregarden.app",
    "DATABASE_URL": "postgres://choregarden:hardening-pw-1@db.example.com:5432/choregarden_prod",
    "DB_SSLROOTCERT": str(CA_BUNDLE),
    "BEHIND_TLS_PROXY": "true",
    "AVATAR_BUCKET": "choregarden-avatars",
}


def production(
    *args: str, code: str | None = None, **overrides: str
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DJANGO_", "SECURE_"))}
    for key in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "DEBUG"):
        env.pop(key, None)
    env.update(PRODUCTION_ENV, ENV_FILE="/nonexistent/.env", **overrides)
    argv = [sys.executable, "-c", code] if code else [sys.executable, "manage.py", *args]
    return subprocess.run(
        argv,
        cwd=REPO,
        env={**env, "DJANGO_SETTINGS_MODULE": "choregarden.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )


def production_settings(**overrides: str) -> dict[str, Any]:
    names = [
        "SECURE_SSL_REDIRECT",
        "SECURE_HSTS_SECONDS",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS",
        "SECURE_PROXY_SSL_HEADER",
        "SESSION_COOKIE_SECURE",
        "SESSION_COOKIE_HTTPONLY",
        "SESSION_COOKIE_AGE",
        "SESSION_EXPIRE_AT_BROWSER_CLOSE",
        "CSRF_COOKIE_SECURE",
        "CSRF_COOKIE_HTTPONLY",
        "CSRF_TRUSTED_ORIGINS",
        "TRUSTED_PROXY_COUNT",
    ]
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        f"print(json.dumps({{n: getattr(settings, n, None) for n in {names!r}}}))"
    )
    proc = production(code=code, **overrides)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_check_deploy_is_clean_with_the_production_environment() -> None:
    proc = production("check", "--deploy", "--fail-level", "WARNING")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "System check identified no issues (0 silenced)." in proc.stdout
    assert "hardening-pw-1" not in proc.stdout + proc.stderr


def test_production_cookies_are_secure_and_http_only_and_expire() -> None:
    values = production_settings()
    assert values["SECURE_SSL_REDIRECT"] is True
    assert values["SECURE_HSTS_SECONDS"] == 31_536_000
    assert values["SECURE_HSTS_INCLUDE_SUBDOMAINS"] is True
    assert values["SESSION_COOKIE_SECURE"] is True
    assert values["SESSION_COOKIE_HTTPONLY"] is True
    assert values["CSRF_COOKIE_SECURE"] is True
    assert values["CSRF_COOKIE_HTTPONLY"] is True
    assert values["SESSION_COOKIE_AGE"] == 8 * 3600
    assert values["SESSION_EXPIRE_AT_BROWSER_CLOSE"] is True
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://admin.choregarden.app"]


def test_the_proxy_headers_are_trusted_only_when_told_so() -> None:
    behind = production_settings()
    assert behind["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert behind["TRUSTED_PROXY_COUNT"] == 1
    direct = production_settings(BEHIND_TLS_PROXY="false")
    assert direct["SECURE_PROXY_SSL_HEADER"] is None
    assert direct["TRUSTED_PROXY_COUNT"] == 0


def test_the_environment_can_tune_session_age_and_origins() -> None:
    values = production_settings(
        SESSION_COOKIE_AGE="3600",
        CSRF_TRUSTED_ORIGINS="https://a.example.com,https://b.example.com",
    )
    assert values["SESSION_COOKIE_AGE"] == 3600
    assert values["CSRF_TRUSTED_ORIGINS"] == ["https://a.example.com", "https://b.example.com"]


def test_check_deploy_names_what_is_missing_without_https_settings() -> None:
    proc = production("check", "--deploy", SECURE_SSL_REDIRECT="false", SECURE_HSTS_SECONDS="0")
    assert "security.W008" in proc.stderr + proc.stdout
    assert "security.W004" in proc.stderr + proc.stdout


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser(
        "alice", "alice@example.com", "correct-horse-9"
    )


def sign_in(client: Client, password: str) -> Any:
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "alice", "password": password},
        REMOTE_ADDR="203.0.113.7",
    )


@pytest.mark.django_db
def test_admin_sign_in_locks_out_after_the_failure_limit(client: Client, alice: Any) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):
        response = sign_in(client, "wrong-password")
        assert response.status_code == 200
        assert b"Please enter the correct username and password" in response.content
    locked = sign_in(client, "wrong-password")
    assert locked.status_code == 429
    message = locked.content.decode()
    assert "Too many failed sign-in attempts" in message
    assert "locked for 15 minutes" in message
    # Even the right password is refused while locked out.
    assert sign_in(client, "correct-horse-9").status_code == 429
    # What axes keeps about the attempts never holds the password.
    for attempt in AccessAttempt.objects.all():
        assert "wrong-password" not in attempt.post_data
    reset(username="alice")
    assert sign_in(client, "correct-horse-9").status_code == 302


@pytest.mark.django_db
def test_a_successful_sign_in_resets_the_failure_count(client: Client, alice: Any) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "wrong-password")
    assert sign_in(client, "correct-horse-9").status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "wrong-password").status_code == 200


def test_check_deploy_warns_when_avatars_would_stay_on_the_web_servers_disk() -> None:
    proc = production("check", "--deploy", "--fail-level", "WARNING", AVATAR_BUCKET="")
    assert proc.returncode == 1
    assert "accounts.W001" in proc.stderr and "AVATAR_BUCKET" in proc.stderr
