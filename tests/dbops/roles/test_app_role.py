"""The test suite itself runs as the application role (D4), not as the owner."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.utils import ProgrammingError

from dbops.models import MigrationTest


@pytest.mark.django_db
def test_the_test_suite_runs_as_the_application_role() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == ("choregarden",)
    with pytest.raises(ProgrammingError, match="permission denied"), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE not_allowed (id int)")


@pytest.mark.django_db(transaction=True)
def test_transactional_tests_are_cleaned_up_by_the_owner() -> None:
    MigrationTest.objects.create(name="written by a transactional test")
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == ("choregarden",)


@pytest.mark.django_db(transaction=True)
def test_the_previous_transactional_test_left_nothing() -> None:
    assert not MigrationTest.objects.filter(name="written by a transactional test").exists()
