"""Admin sign-in throttling behind a load balancer: whose address counts, and what locks."""

from __future__ import annotations

from typing import Any

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client, RequestFactory, override_settings
from hypothesis import given
from hypothesis import strategies as st

from dbops.signin.throttling import client_address
from tests.choregarden.test_hardening import production, production_settings

BALANCER = "10.0.0.2"  # REMOTE_ADDR of every request that came through the balancer
EDGE = "10.0.5.9"  # a second trusted proxy in front of the balancer (a CDN, say)
PASSWORD = "correct-horse-battery-9"


def forwarded(header: str | None, peer: str = BALANCER) -> Any:
    headers = {} if header is None else {"X-Forwarded-For": header}
    return RequestFactory().get("/admin/login/", headers=headers, REMOTE_ADDR=peer)


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    assert settings.TRUSTED_PROXY_COUNT == 0
    assert client_address(forwarded("198.51.100.7", peer="203.0.113.5")) == "203.0.113.5"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_behind_one_proxy_the_entry_it_appended_is_the_client() -> None:
    assert client_address(forwarded("203.0.113.5")) == "203.0.113.5"
    # What the client sent before the balancer's entry is not believed.
    assert client_address(forwarded("198.51.100.66, 203.0.113.5")) == "203.0.113.5"
    assert client_address(forwarded('", 198.51.100.66, 203.0.113.5')) == "203.0.113.5"
    assert client_address(forwarded("junk, 2001:db8::7")) == "2001:db8::7"


@override_settings(TRUSTED_PROXY_COUNT=2)
def test_behind_two_proxies_the_entry_the_farther_one_appended_is_the_client() -> None:
    assert client_address(forwarded("198.51.100.66, 203.0.113.5, " + EDGE)) == "203.0.113.5"


@override_settings(TRUSTED_PROXY_COUNT=1)
def test_a_request_that_skipped_the_proxy_counts_as_its_peer() -> None:
    assert client_address(forwarded(None, peer="203.0.113.5")) == "203.0.113.5"
    assert client_address(forwarded("not-an-address", peer="203.0.113.5")) == "203.0.113.5"


header_text = st.text(
    alphabet=st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=40
)


@given(spoofed=header_text, client=st.ip_addresses().map(str))
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_no_header_a_client_sends_changes_its_address(spoofed: str, client: str) -> None:
    # The balancer appends ", <client>" to whatever X-Forwarded-For the client sent.
    header = f"{spoofed}, {client}" if spoofed else client
    assert client_address(forwarded(header)) == client


@pytest.fixture
def admins(django_user_model: Any) -> Any:
    for name in ("alice", "bob"):
        django_user_model.objects.create_superuser(name, f"{name}@example.com", PASSWORD)


def sign_in(client: Client, username: str, password: str, xff: str) -> int:
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password},
        headers={"X-Forwarded-For": xff},
        REMOTE_ADDR=BALANCER,
    )
    return response.status_code


@pytest.mark.django_db
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_failures_are_recorded_under_the_real_client_not_the_spoofed_one(
    client: Client, admins: None
) -> None:
    assert sign_in(client, "alice", "wrong", "192.0.2.250, 203.0.113.5") == 200
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["203.0.113.5"]


@pytest.mark.django_db
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_clients_behind_one_balancer_are_not_lumped_together(client: Client, admins: None) -> None:
    # Many failures with different names and spoofed entries, from one attacker...
    for number in range(settings.SIGNIN_ADDRESS_FAILURE_LIMIT + 2):
        sign_in(client, f"guess{number}", "wrong", f"198.51.100.{number}, 203.0.113.66")
    # ...lock the attacker's address, not the balancer's nor another staff member's.
    assert sign_in(client, "nobody", "wrong", "203.0.113.66") == 429
    assert sign_in(client, "alice", PASSWORD, "203.0.113.5") == 302


@pytest.mark.django_db
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_an_admins_name_alone_cannot_lock_the_admin_out(client: Client, admins: None) -> None:
    for _ in range(settings.AXES_FAILURE_LIMIT + 2):
        sign_in(client, "alice", "wrong", "203.0.113.66")
    assert sign_in(client, "alice", PASSWORD, "203.0.113.66") == 429
    # The attacker's address is locked for alice; alice at her own address is not.
    assert sign_in(client, "alice", PASSWORD, "203.0.113.5") == 302


@pytest.mark.django_db
@override_settings(TRUSTED_PROXY_COUNT=1)
def test_one_address_is_locked_after_its_own_limit_whatever_the_names(
    client: Client, admins: None
) -> None:
    limit = settings.SIGNIN_ADDRESS_FAILURE_LIMIT
    assert limit > settings.AXES_FAILURE_LIMIT
    for number in range(limit - 1):
        assert sign_in(client, f"guess{number}", "wrong", "203.0.113.66") == 200
    assert sign_in(client, "another-guess", "wrong", "203.0.113.66") == 429
    # Even bob's right password: the address is locked, not the pair.
    assert sign_in(client, "bob", PASSWORD, "203.0.113.66") == 429
    assert sign_in(client, "bob", PASSWORD, "203.0.113.77") == 302


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"TRUSTED_PROXY_COUNT": "0"}, "TRUSTED_PROXY_COUNT=0 with BEHIND_TLS_PROXY=true"),
        ({"TRUSTED_PROXY_COUNT": "one"}, "TRUSTED_PROXY_COUNT='one' is not a whole number"),
        ({"SIGNIN_ADDRESS_FAILURE_LIMIT": "0"}, "SIGNIN_ADDRESS_FAILURE_LIMIT=0 must be at least"),
        ({"ADMIN_REQUIRE_2FA": "maybe"}, "ADMIN_REQUIRE_2FA='maybe' is not a boolean"),
    ],
)
def test_bad_throttling_settings_are_refused_in_one_line(
    overrides: dict[str, str], message: str
) -> None:
    proc = production("check", **overrides)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {message}"), proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_behind_a_proxy_the_number_of_hops_can_be_raised() -> None:
    assert production_settings(TRUSTED_PROXY_COUNT="2")["TRUSTED_PROXY_COUNT"] == 2
