"""Production settings met as a user meets them: through a TLS-ending load balancer.

Each request reaches a `manage.py`-like process with the production environment
(BEHIND_TLS_PROXY) on the test database, as the balancer forwards it: from the
balancer's address, with the X-Forwarded-Proto and X-Forwarded-For it sets.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django_otp.oath import TOTP

from dbops.signin.twofactor import add_device
from tests.choregarden.test_hardening import PRODUCTION_ENV
from tests.helpers import REPO

HOST = "admin.choregarden.app"
BALANCER = "10.0.0.2"
PASSWORD = "correct-horse-battery-9"


def through_balancer(
    pg_server: Any, steps: list[dict[str, Any]], **overrides: str
) -> list[dict[str, Any]]:
    """Send `steps` as the balancer forwards them; return each answer (proxyhop)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DJANGO_", "SECURE_"))}
    # No collectstatic here: the pages name the apps' static files without the manifest.
    env.update(
        PRODUCTION_ENV, ENV_FILE="/nonexistent/.env", DB_POOL="false", STATIC_MANIFEST="false"
    )
    env["DATABASE_URL"] = pg_server.url(settings.DATABASES["default"]["NAME"], role="app")
    env.update(pg_server.ssl_env(), DJANGO_SETTINGS_MODULE="choregarden.settings", **overrides)
    forwarded = []
    for step in steps:
        client, proto = step.pop("client"), step.pop("proto", "https")
        spoofed = step.pop("spoofed", "")
        headers = {
            "X-Forwarded-Proto": proto,
            "X-Forwarded-For": f"{spoofed}, {client}" if spoofed else client,
        }
        forwarded.append({**step, "peer": BALANCER, "host": HOST, "headers": headers})
    proc = subprocess.run(
        [sys.executable, "-c", "from tests.choregarden.proxyhop import main; main()"],
        cwd=REPO,
        env=env,
        input=json.dumps(forwarded),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def sign_in(client: str, password: str, token: str = "", spoofed: str = "") -> dict[str, Any]:
    body = f"username=alice&password={password}&otp_token={token}"
    return {
        "method": "POST",
        "path": "/admin/login/?next=/admin/",
        "body": body,
        "client": client,
        "spoofed": spoofed,
    }


@pytest.fixture
def alice(django_user_model: Any) -> Any:
    return django_user_model.objects.create_superuser("alice", "alice@example.com", PASSWORD)


def test_plain_http_through_the_balancer_is_redirected_to_https(pg_server: Any) -> None:
    (answer,) = through_balancer(
        pg_server, [{"path": "/admin/login/", "client": "203.0.113.5", "proto": "http"}]
    )
    assert answer["status"] == 301
    assert answer["location"] == f"https://{HOST}/admin/login/"


@pytest.mark.django_db(transaction=True)
def test_signing_in_through_the_balancer_in_production(pg_server: Any, alice: Any) -> None:
    device = add_device(alice, "phone")
    page, wrong, no_token, signed_in, index = through_balancer(
        pg_server,
        [
            {"path": "/admin/login/", "client": "203.0.113.5"},
            sign_in("203.0.113.5", "wrong-password", spoofed="192.0.2.250"),
            sign_in("203.0.113.5", PASSWORD),
            sign_in("203.0.113.5", PASSWORD, f"{TOTP(device.bin_key).token():06d}"),
            {"path": "/admin/", "client": "203.0.113.5"},
        ],
    )
    assert page["status"] == 200
    assert page["headers"]["Strict-Transport-Security"].startswith("max-age=31536000")
    assert "default-src 'none'" in page["headers"]["Content-Security-Policy"]
    assert page["cookies"]["csrftoken"] == {"secure": True, "httponly": True, "samesite": "Lax"}
    assert wrong["status"] == 200
    assert "Please enter the correct username and password" in wrong["content"]
    assert no_token["status"] == 200
    assert "Please enter your OTP token" in no_token["content"]  # a password is not enough
    assert (signed_in["status"], signed_in["location"]) == (302, "/admin/")
    assert signed_in["cookies"]["sessionid"] == {
        "secure": True,
        "httponly": True,
        "samesite": "Lax",
    }
    assert index["status"] == 200
    # The sign-in is logged under the client's address, not the spoofed one or the
    # balancer's; it reset the pair's failures.
    assert list(AccessLog.objects.values_list("ip_address", flat=True)) == ["203.0.113.5"]
    assert not AccessAttempt.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_failures_through_the_balancer_lock_the_client_not_everyone(
    pg_server: Any, alice: Any
) -> None:
    limit = settings.AXES_FAILURE_LIMIT
    attacker = [
        sign_in("198.51.100.66", "wrong-password", spoofed=f"192.0.2.{n}") for n in range(limit)
    ]
    answers = through_balancer(pg_server, [*attacker, sign_in("203.0.113.5", PASSWORD)])
    assert [a["status"] for a in answers[:limit]] == [200] * (limit - 1) + [429]
    # alice from her own address is not locked out: her password passes (she has no
    # TOTP device yet, which production asks for next).
    assert answers[-1]["status"] == 200
    assert "no confirmed authenticator" in answers[-1]["content"]
    addresses = set(AccessAttempt.objects.values_list("ip_address", flat=True))
    assert addresses == {"198.51.100.66"}
