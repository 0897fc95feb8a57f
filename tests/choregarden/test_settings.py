"""Settings refuse unsafe production configurations, naming the variable and the fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.checks.security.base import _check_secret_key
from hypothesis import given, settings
from hypothesis import strategies as st

from choregarden.settings import secret_key_weakness
from tests.helpers import REPO

SECRET_PASSWORD = "s3cr3t-Pa55word-do-not-print"
# Long and varied enough for Django's security.W009 (what secrets.token_urlsafe(50) makes).
PRODUCTION_KEY = "Qm7kV2pX9wL4tR8zN3cJ6hB1yF5dG0sA-production-key-for-tests-only"
PROD = {
    "DJANGO_ENV": "production",
    "DEBUG": "false",
    "SECRET_KEY": PRODUCTION_KEY,
    "ALLOWED_HOSTS": "admin.example.com",
    "DATABASE_URL": f"postgres://choregarden:{SECRET_PASSWORD}@db.example.com:5432/prod",
    "DB_SSLMODE": "verify-full",
    "DB_SSLROOTCERT": "/etc/ssl/rds-global-bundle.pem",
}
WEAK_KEY = "weak-KEY-never-printed"


def production_env(**overrides: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DJANGO_"))}
    for key in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REPLICA_DATABASE_URL", "LOG_LEVEL"):
        env.pop(key, None)
    env.update(PROD)
    env["ENV_FILE"] = "/nonexistent/.env"
    env["DJANGO_SETTINGS_MODULE"] = "choregarden.settings"
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def load_settings(**overrides: str | None) -> subprocess.CompletedProcess[str]:
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DJANGO_ENV)"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO,
        env=production_env(**overrides),
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
        ({"SECRET_KEY": WEAK_KEY}, "SECRET_KEY has 22 characters", "secrets.token_urlsafe"),
        (
            {"SECRET_KEY": "django-insecure-" + PRODUCTION_KEY},
            "SECRET_KEY starts with 'django-insecure-'",
            "set SECRET_KEY",
        ),
        ({"SECRET_KEY": "abab" * 20}, "SECRET_KEY has 2 different characters", "set SECRET_KEY"),
        (
            {"SECRET_KEY": None, "SECRET_KEY_FILE": "/nonexistent/secret-key"},
            "SECRET_KEY_FILE='/nonexistent/secret-key' cannot be read",
            "point it at the file",
        ),
        ({"ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS contains '*'", "list the site's host names"),
        ({"ALLOWED_HOSTS": "admin.example.com,*"}, "ALLOWED_HOSTS", "list the site's host"),
        ({"ALLOWED_HOSTS": "*.example.com"}, "ALLOWED_HOSTS", ".choregarden.app allows"),
        ({"DB_SSLMODE": "require"}, "DATABASE_URL", "DB_SSLMODE=verify-full"),
        ({"DB_SSLMODE": "disable"}, "DATABASE_URL", "DB_SSLMODE=verify-full"),
        ({"DB_SSLMODE": "bogus"}, "DB_SSLMODE='bogus'", "use one of disable"),
        (
            {"DATABASE_URL": PROD["DATABASE_URL"] + "?sslmode=prefer"},
            "DATABASE_URL",
            "remove sslmode from the URL",
        ),
        ({"DB_SSLROOTCERT": None}, "DB_SSLROOTCERT", "RDS CA bundle"),
        ({"DATABASE_URL": None}, "DATABASE_URL", "set it"),
        ({"DATABASE_URL": "not a url"}, "DATABASE_URL does not point at PostgreSQL", "postgres://"),
        ({"DATABASE_URL": f"//u:{SECRET_PASSWORD}@h/db"}, "DATABASE_URL", "use a postgres:// URL"),
        (
            {"DATABASE_URL": f"postgres://u:{SECRET_PASSWORD}@h:port/db"},
            "DATABASE_URL is not a valid database URL",
            "use postgres://USER:",
        ),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS", "set ALLOWED_HOSTS"),
        ({"DJANGO_ENV": "staging"}, "DJANGO_ENV", "set DJANGO_ENV"),
        ({"DEBUG": "maybe"}, "DEBUG", "true or false"),
        ({"SECURE_SSL_REDIRECT": "sometimes"}, "SECURE_SSL_REDIRECT", "true or false"),
        ({"DB_POOL_MAX_SIZE": "abc"}, "DB_POOL_MAX_SIZE", "whole number"),
        ({"DB_PORT": "54x2"}, "DB_PORT='54x2' is not a port", "from 1 to 65535"),
        ({"DB_PORT": "70000"}, "DB_PORT='70000' is not a port", "e.g. 5432"),
        ({"DB_POOL_TIMEOUT": "0"}, "DB_POOL_TIMEOUT=0", "at least 1"),
        ({"SECURE_HSTS_SECONDS": "1y"}, "SECURE_HSTS_SECONDS", "whole number"),
        ({"DB_POOL_MIN_SIZE": "30"}, "DB_POOL_MIN_SIZE", "DB_POOL_MAX_SIZE"),
        ({"LOG_LEVEL": "verbose"}, "LOG_LEVEL='verbose'", "DEBUG, INFO"),
        ({"DB_LOCK_TIMEOUT": "5"}, "DB_LOCK_TIMEOUT='5' has no unit", "write 5s or 5ms, whichever"),
        ({"DB_STATEMENT_TIMEOUT": "soon"}, "DB_STATEMENT_TIMEOUT='soon'", "e.g. 30s, 500ms"),
        ({"DATABASE_URL": f"mysql://u:{SECRET_PASSWORD}@h/db"}, "DATABASE_URL", "postgres://"),
    ],
)
def test_manage_py_refuses_unsafe_production_settings_in_one_line(
    overrides: dict[str, str | None], variable: str, fix: str
) -> None:
    proc = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO,
        env=production_env(**overrides),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr  # no traceback
    assert lines[0].startswith("error: ")
    assert variable in lines[0]
    assert fix in lines[0]
    for secret in (SECRET_PASSWORD, WEAK_KEY, PRODUCTION_KEY):
        assert secret not in proc.stderr


def test_manage_py_reads_the_settings_that_settings_names(tmp_path: Path) -> None:
    # The project's settings would refuse this environment; --settings picks others.
    (tmp_path / "alt_settings.py").write_text(
        'SECRET_KEY = "alt"\nINSTALLED_APPS = []\nDATABASES = {}\nUSE_TZ = True\n'
    )
    argv = ["check", "--settings=alt_settings", f"--pythonpath={tmp_path}"]
    proc = subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=REPO,
        env=production_env(SECRET_KEY=None),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "System check identified no issues" in proc.stdout


@settings(max_examples=80, deadline=None)
@given(key=st.text(alphabet="ab-_django-insecureXYZ0123456789", max_size=70))
def test_the_secret_key_rule_is_djangos_security_w009(key: str) -> None:
    assert (secret_key_weakness(key) == "") is _check_secret_key(key)


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


def development_env(pg_server: Any, **env: str) -> dict[str, str]:
    """A developer's environment next to the local cluster: only `env` set for the database."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DJANGO_"))}
    for key in ("DATABASE_URL", "MIGRATION_DATABASE_URL", "REPLICA_DATABASE_URL"):
        base.pop(key, None)
    return {
        **base,
        "DJANGO_ENV": "development",
        "DJANGO_SETTINGS_MODULE": "choregarden.settings",
        "ENV_FILE": "/nonexistent/.env",
        "DEVDB_DIR": str(pg_server.cluster.requested_dir),
        "DB_POOL": "false",
        **env,
    }


@pytest.fixture
def local_cluster(pg_server: Any) -> Any:
    if pg_server.cluster is None:
        pytest.skip("TEST_DATABASE_URL is set: there is no local cluster to point a URL at")
    return pg_server


def test_a_database_url_at_the_local_cluster_is_verified_with_its_ca(local_cluster: Any) -> None:
    # What `export DATABASE_URL=$(manage.py devdb url --reveal)` gives a developer.
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "from django.db import connection; cursor = connection.cursor(); "
        "cursor.execute('SELECT ssl, current_user FROM pg_stat_ssl WHERE pid = pg_backend_pid()'); "
        "print(*cursor.fetchone(), connection.get_connection_params()['sslrootcert'])"
    )
    for host in ("127.0.0.1", "localhost"):
        url = local_cluster.url(role="app").replace("@127.0.0.1:", f"@{host}:")
        proc = subprocess.run(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=development_env(local_cluster, DATABASE_URL=url),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        ca = local_cluster.cluster.ca_file
        assert proc.stdout.split() == ["True", local_cluster.app_user, str(ca)]


def resolved_cas(env: dict[str, str]) -> dict[str, str | None]:
    """Return each alias's CA as a connection gets it (dbops.connections.config.resolve)."""
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "from dbops.connections.config import resolve; print(json.dumps({alias: "
        "resolve(config)['OPTIONS'].get('sslrootcert') for alias, config in "
        "settings.DATABASES.items()}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


def test_the_local_clusters_ca_goes_to_its_address_only(local_cluster: Any) -> None:
    other = f"postgres://choregarden:pw@127.0.0.1:{local_cluster.port + 1}/choregarden_dev"
    env = development_env(
        local_cluster,
        DATABASE_URL=other,
        MIGRATION_DATABASE_URL=local_cluster.url(),
        REPLICA_DATABASE_URL=local_cluster.url(role="app").replace("127.0.0.1", "db.example"),
    )
    ca = str(local_cluster.cluster.ca_file)
    assert resolved_cas(env) == {"default": None, "owner": ca, "replica": None}
    # DB_SSLROOTCERT, when set, is the CA for every URL.
    env["DB_SSLROOTCERT"] = "/etc/ssl/other-ca.pem"
    assert set(resolved_cas(env).values()) == {"/etc/ssl/other-ca.pem"}
