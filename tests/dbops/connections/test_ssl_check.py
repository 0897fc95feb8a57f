"""dbops.E009: a CA bundle that is not a readable file is reported at start, by name."""

from __future__ import annotations

import os
from pathlib import Path

from tests.helpers import run_manage


def env(ca: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_ENV": "test",
        "DATABASE_URL": "postgres://app:pw@127.0.0.1:1/db",
        "DB_SSLMODE": "verify-full",
        "DB_SSLROOTCERT": ca,
    }


def test_a_missing_ca_bundle_fails_the_system_check(tmp_path: Path) -> None:
    result = run_manage("check", env=env(str(tmp_path / "missing.pem")))
    assert result.returncode == 1
    assert "dbops.E009" in result.stderr
    assert "missing.pem" in result.stderr and "DB_SSLROOTCERT" in result.stderr


def test_a_readable_ca_bundle_passes(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    result = run_manage("check", env=env(str(ca)))
    assert "dbops.E009" not in result.stdout + result.stderr
    assert result.returncode == 0, result.stderr
