"""/healthz and /readyz for the load balancer: ok / not ok, no details, rate-limited."""

from __future__ import annotations

import logging
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connections
from django.test import Client, override_settings

from dbops.health import healthz
from tests.migrationfiles import newest_file, newest_version

MIGRATIONS = Path(settings.BASE_DIR) / "migrations_sql"


@pytest.fixture(autouse=True)
def fresh_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(healthz, "_buckets", {})


def migrations_copy(tmp_path: Path, *, drop: str = "", add: str = "") -> dict[str, Any]:
    """SQL_MIGRATIONS pointing at a copy of the project's files, one removed or added."""
    location = tmp_path / "migrations_sql"
    shutil.copytree(MIGRATIONS, location)
    for path in location.glob(f"{drop}*") if drop else []:
        path.unlink()
    if add:
        (location / add).write_text("-- a migration the database has not seen\nSELECT 1;\n")
    return {**settings.SQL_MIGRATIONS, "LOCATION": location}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def test_healthz_answers_ok_without_the_database() -> None:
    # No django_db mark: a database query here would fail the test.
    response = Client().get("/healthz")
    assert (response.status_code, response.content) == (200, b"ok\n")
    assert response["Cache-Control"] == "no-store"


@override_settings(SECURE_SSL_REDIRECT=True, ALLOWED_HOSTS=["admin.example.com"])
def test_the_balancers_plain_http_check_at_the_targets_address_is_answered() -> None:
    response = Client().get("/healthz", HTTP_HOST="10.0.3.17:8000")
    assert (response.status_code, response.content) == (200, b"ok\n")


@pytest.mark.django_db
def test_readyz_is_ok_on_a_migrated_database() -> None:
    response = Client().get("/readyz")
    assert (response.status_code, response.content) == (200, b"ok\n")


@pytest.mark.django_db
def test_readyz_is_not_ok_when_the_database_does_not_answer(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(connections["default"].settings_dict, "PORT", closed_port())
    with caplog.at_level(logging.WARNING, "choregarden.health"):
        response = Client().get("/readyz")
    assert (response.status_code, response.content) == (503, b"not ok\n")
    assert "not ready" in caplog.text  # the cause is in the log, not in the body


@pytest.mark.django_db
def test_readyz_is_not_ok_when_a_migration_on_disk_is_newer_than_the_database(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    newest = newest_version()
    newer = migrations_copy(tmp_path, add=f"V{newest + 1}__add_a_column.sql")
    with override_settings(SQL_MIGRATIONS=newer), caplog.at_level(logging.WARNING):
        response = Client().get("/readyz")
    assert (response.status_code, response.content) == (503, b"not ok\n")
    assert f"schema is at version {newest}, the newest migration file is {newest + 1}" in (
        caplog.text
    )


@pytest.mark.django_db
def test_readyz_stays_ok_while_the_database_is_ahead_of_the_files(tmp_path: Path) -> None:
    # A deploy migrates before the new release starts; the old one must stay in service.
    older = migrations_copy(tmp_path, drop=newest_file())
    with override_settings(SQL_MIGRATIONS=older):
        response = Client().get("/readyz")
    assert (response.status_code, response.content) == (200, b"ok\n")


@override_settings(HEALTH_CHECKS_PER_SECOND=3)
def test_health_checks_beyond_the_rate_get_429_until_the_bucket_refills(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(healthz, "now", lambda: clock[0])
    client = Client()
    assert [client.get("/healthz").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get("/healthz")["Retry-After"] == "1"
    clock[0] += 1.0
    assert [client.get("/healthz").status_code for _ in range(4)] == [200, 200, 200, 429]
