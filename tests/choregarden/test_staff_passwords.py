"""Staff passwords have 12 characters at least: the admin's forms and createsuperuser."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.management.commands import createsuperuser
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import Client

ELEVEN = "Zq8#vLm2Rt5"  # 11 characters, none of the other validators' objections
TWELVE = "Zq8#vLm2Rt5w"
TOO_SHORT = "This password is too short. It must contain at least 12 characters."

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser(
        "alice", "alice@example.com", "correct-horse-battery-9"
    )


def test_the_admin_refuses_an_11_character_password_for_a_user(
    admin_client: Client, alice: Any
) -> None:
    url = f"/admin/auth/user/{alice.pk}/password/"
    short = admin_client.post(url, {"password1": ELEVEN, "password2": ELEVEN})
    assert short.status_code == 200
    assert TOO_SHORT in short.content.decode()
    alice.refresh_from_db()
    assert not alice.check_password(ELEVEN)
    assert admin_client.post(url, {"password1": TWELVE, "password2": TWELVE}).status_code == 302
    alice.refresh_from_db()
    assert alice.check_password(TWELVE)


def test_staff_cannot_change_their_own_password_to_11_characters(
    client: Client, alice: Any
) -> None:
    client.force_login(alice)
    data = {"old_password": "correct-horse-battery-9"}
    response = client.post(
        "/admin/password_change/", {**data, "new_password1": ELEVEN, "new_password2": ELEVEN}
    )
    assert TOO_SHORT in response.content.decode()
    alice.refresh_from_db()
    assert alice.check_password("correct-horse-battery-9")


class Terminal(StringIO):
    """Standard input that says it is a terminal, as createsuperuser's prompts need."""

    def isatty(self) -> bool:
        return True


def test_createsuperuser_refuses_11_characters(monkeypatch: pytest.MonkeyPatch) -> None:
    passwords = iter([ELEVEN, ELEVEN, TWELVE, TWELVE])
    answers = iter(["bea", "bea@example.com", "N"])
    monkeypatch.setattr(createsuperuser.getpass, "getpass", lambda prompt="": next(passwords))
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    stderr = StringIO()
    call_command(
        "createsuperuser", interactive=True, stdin=Terminal(), stdout=StringIO(), stderr=stderr
    )
    assert TOO_SHORT in stderr.getvalue()
    assert User.objects.get(username="bea").check_password(TWELVE)
