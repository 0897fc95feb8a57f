"""The project's own models and its migrated database agree (issue 4.6)."""

from __future__ import annotations

from typing import Any

import pytest

from dbops.drift.compare import Table, partitioned_key_matches
from tests.helpers import run_manage


@pytest.mark.django_db  # makes pytest-django create and migrate the test database
def test_the_project_has_no_drift(manage_env: dict[str, str]) -> None:
    result = run_manage("schemadrift", env=manage_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "No drift" in result.stdout


def test_a_partitioned_key_is_the_model_key_plus_the_partition_columns() -> None:
    table: Any = Table(primary_key=("id", "completed_at"), partition_key=("completed_at",))
    assert partitioned_key_matches(("id",), table)
    assert not partitioned_key_matches(("id", "household_id"), table)
    assert not partitioned_key_matches(("id",), Table(primary_key=("id", "completed_at")))
