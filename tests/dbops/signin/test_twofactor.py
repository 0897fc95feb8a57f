"""Staff sign in to the admin with a password and a TOTP token when ADMIN_REQUIRE_2FA is on."""

from __future__ import annotations

import re
from base64 import b32decode
from io import StringIO
from typing import Any

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.test import Client, override_settings
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

PASSWORD = "correct-horse-battery-9"
ADDRESS = "203.0.113.5"

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("two_factor")]


@pytest.fixture
def two_factor() -> Any:
    with override_settings(ADMIN_REQUIRE_2FA=True):
        yield


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("alice", "alice@example.com", PASSWORD)


def enroll(username: str) -> tuple[str, str]:
    """Run `addtotp` as an operator would; return what it printed and the secret."""
    out = StringIO()
    call_command("addtotp", username, stdout=out)
    secret = re.search(r"^secret: ([A-Z2-7]+)$", out.getvalue(), re.MULTILINE)
    assert secret, out.getvalue()
    return out.getvalue(), secret.group(1)


def token(secret: str, offset: int = 0) -> str:
    totp = TOTP(b32decode(secret), step=30, digits=6)
    totp.drift = offset
    return f"{totp.token():06d}"


def sign_in(client: Client, password: str, otp_token: str = "") -> Any:
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": "alice", "password": password, "otp_token": otp_token},
        REMOTE_ADDR=ADDRESS,
    )


def test_addtotp_prints_the_uri_and_secret_of_a_confirmed_device(alice: Any) -> None:
    printed, secret = enroll("alice")
    assert f"otpauth://totp/Chore%20Garden%20admin%3Aalice?secret={secret}" in printed
    device = TOTPDevice.objects.get(user=alice)
    assert device.confirmed


def test_addtotp_refuses_an_unknown_or_non_staff_user(django_user_model: Any) -> None:
    with pytest.raises(CommandError, match="No user 'nobody'"):
        call_command("addtotp", "nobody")
    django_user_model.objects.create_user("carol", "carol@example.com", PASSWORD)
    with pytest.raises(CommandError, match="'carol' is not staff"):
        call_command("addtotp", "carol")
    assert not TOTPDevice.objects.exists()


def test_a_password_alone_does_not_open_the_admin(client: Client, alice: Any) -> None:
    enroll("alice")
    response = sign_in(client, PASSWORD)
    assert response.status_code == 200
    assert b"Please enter your OTP token" in response.content
    assert client.get("/admin/").status_code == 302


def test_the_password_and_the_current_token_open_the_admin(client: Client, alice: Any) -> None:
    _, secret = enroll("alice")
    assert sign_in(client, PASSWORD, token(secret)).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_staff_without_a_device_are_told_how_to_enroll(client: Client, alice: Any) -> None:
    response = sign_in(client, PASSWORD, "123456")
    assert b"no confirmed authenticator (TOTP) device" in response.content
    assert b"manage.py addtotp alice" in response.content
    assert client.get("/admin/").status_code == 302


def test_a_signed_in_but_unverified_session_is_not_let_in(client: Client, alice: Any) -> None:
    client.force_login(alice)
    assert client.get("/admin/").status_code == 302


def test_wrong_tokens_are_throttled_as_failed_sign_ins(client: Client, alice: Any) -> None:
    _, secret = enroll("alice")
    wrong = token(secret, offset=10)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        response = sign_in(client, PASSWORD, wrong)
        assert response.status_code == 200
    assert sign_in(client, PASSWORD, wrong).status_code == 429
    # Locked: the right password and the right token are refused too.
    assert sign_in(client, PASSWORD, token(secret)).status_code == 429
    assert client.get("/admin/").status_code == 302


@override_settings(ADMIN_REQUIRE_2FA=False)
def test_without_the_setting_a_password_is_enough(client: Client, alice: Any) -> None:
    assert sign_in(client, PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200
