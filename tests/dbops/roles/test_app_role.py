"""The test suite itself runs as the application role (D4), not as the owner."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.utils import ProgrammingError
from django.test import TransactionTestCase

from dbops.models import MigrationTest


@pytest.mark.django_db
def test_the_test_suite_runs_as_the_application_role() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        assert cursor.fetchone() == ("choregarden",)
    with pytest.raises(ProgrammingError, match="permission denied"), connection.cursor() as cursor:
        cursor.execute("CREATE TABLE not_allowed (id int)")


def current_user() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user")
        return str(cursor.fetchone()[0])


@pytest.mark.django_db(transaction=True)
def test_transactional_tests_are_cleaned_up_by_the_owner() -> None:
    MigrationTest.objects.create(name="written by a transactional test")
    assert current_user() == "choregarden"

    # The teardown a transactional test ends with: Django's flush (TRUNCATE), which only
    # the owner may run; the application role is back once it is done.
    TransactionTestCase()._fixture_teardown()

    assert not MigrationTest.objects.exists()
    assert current_user() == "choregarden"
