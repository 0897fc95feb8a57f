"""`manage.py demodata`: fills the database once; a second run creates nothing."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.db import connection

from chores.models import Assignment, Completion, Household, HouseholdMember

pytestmark = pytest.mark.django_db


def run(capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    call_command("demodata", "--json")
    return json.loads(capsys.readouterr().out)["created"]


def test_it_fills_the_database_and_a_second_run_creates_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    first = run(capsys)
    assert first["households"] == 2
    assert first["assignments"] == Assignment.objects.count() > 0
    assert first["completions"] == Completion.objects.count() > 0
    assert run(capsys) == {}
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # every household has its owner
    for household in Household.objects.all():
        assert household.members.filter(role=HouseholdMember.Role.OWNER).count() == 1
    assert Assignment.objects.filter(status="open").exists()


def test_it_says_what_it_made(capsys: pytest.CaptureFixture[str]) -> None:
    call_command("demodata")
    assert capsys.readouterr().out.startswith("Done! Demo data: ")
    call_command("demodata")
    assert "nothing new" in capsys.readouterr().out
