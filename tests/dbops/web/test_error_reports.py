"""Django's error page and the log show no password, token or secret, with DEBUG on.

The pages are rendered as a developer sees them: in a fresh process whose settings come
from password-bearing DATABASE_URL, MIGRATION_DATABASE_URL and REPLICA_DATABASE_URL (or a
Secrets Manager secret in moto), for an admin sign-in while the database is down and for a
view that fails holding the password; and in this process through ExceptionReporter.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import tempfile
from html import escape
from typing import Any
from urllib.parse import quote

import pytest
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory
from django.urls import path
from django.views.debug import get_exception_reporter_class
from hypothesis import given, settings
from hypothesis import strategies as st

from dbops.localdb.cluster import State
from sqlmigrations.redact import RedactSecretsFilter, register_secret
from tests.dbops.web.error_page_probe import QUERY_TOKEN, SIGN_IN_PASSWORD
from tests.helpers import REPO

# Characters that URLs, HTML and Python's repr escape, so each form is looked for.
APP_PASSWORD = "App pw <&'\" MARKER-01"
OWNER_PASSWORD = "Owner:pw@/#? MARKER-02"
REPLICA_PASSWORD = "Replica%pw&amp; MARKER-03"
SECRET_PASSWORD = "Secret pw <'\"> MARKER-06"
SECRET_KEY = "marker-secret-key-3f9a1c-never-on-a-page-0123456789-abcdefghij"
COOKIE = "Cookie-MARKER-09"
BEARER = "Bearer Header-MARKER-10"


def forms(secret: str) -> set[str]:
    """Every way a page or a log may write `secret`, and its distinctive tail."""
    written = {secret, quote(secret, safe=""), repr(secret)[1:-1], json.dumps(secret)[1:-1]}
    return written | {escape(form) for form in written} | {secret.rsplit(" ", 1)[-1]}


def leaks(text: str, *secrets: str) -> list[str]:
    return sorted(form for secret in secrets for form in forms(secret) if form in text)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def url(user: str, password: str, port: int) -> str:
    return f"postgres://{user}:{quote(password, safe='')}@127.0.0.1:{port}/choregarden_dev"


def run_probe(
    env: dict[str, str], secret: str = "", *, every_page: bool = False
) -> tuple[dict[str, Any], str]:
    """Run the error-page probe with `env` for the database; return its pages and its log."""
    with tempfile.TemporaryDirectory(prefix="no-devdb-") as no_devdb:
        return _probe(env, secret, every_page, no_devdb)


def _probe(
    env: dict[str, str], secret: str, every_page: bool, no_devdb: str
) -> tuple[dict[str, Any], str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DJANGO_", "AWS_")) and not k.endswith("DATABASE_URL")
    }
    base.update(
        DJANGO_SETTINGS_MODULE="choregarden.settings",
        DJANGO_ENV="development",
        DEBUG="true",
        DB_POOL="false",
        ALLOWED_HOSTS="testserver",
        SECRET_KEY=SECRET_KEY,
        ENV_FILE="/nonexistent/.env",
        DEVDB_DIR=no_devdb,  # empty: no local cluster
        LOG_LEVEL="DEBUG",
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tests.dbops.web.error_page_probe"],
        cwd=REPO,
        env={**base, **env},
        input=json.dumps({"secret": secret, "every_page": every_page}),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout), proc.stderr


def test_the_error_pages_of_url_settings_show_no_password() -> None:
    port = closed_port()
    pages, log = run_probe(
        {
            "DATABASE_URL": url("choregarden", APP_PASSWORD, port),
            "MIGRATION_DATABASE_URL": url("choregarden_owner", OWNER_PASSWORD, port),
            "REPLICA_DATABASE_URL": url("choregarden", REPLICA_PASSWORD, port),
        }
    )
    secrets = (APP_PASSWORD, OWNER_PASSWORD, REPLICA_PASSWORD, SECRET_KEY, SIGN_IN_PASSWORD)
    for name, page in pages.items():
        # The real pages: Django's DEBUG page, listing the settings and the failed frames.
        assert page["status"] == 500, name
        assert "MIGRATION_DATABASE_URL" in page["body"], name
        assert "REPLICA_DATABASE_URL" in page["body"], name
        # The exception, and the traceback's frames down to where it was raised.
        sign_in = name.startswith("sign_in")
        assert ("Connection refused" if sign_in else "ValueError") in page["body"], name
        assert ("get_new_connection" if sign_in else "in boom") in page["body"], name
        assert leaks(page["body"], *secrets, QUERY_TOKEN) == [], name
    assert log.count("Internal Server Error: /boom/") == 2  # once per request, not per handler
    assert leaks(log, *secrets, QUERY_TOKEN) == []


# The status of each page the probe renders with every_page, DEBUG on and off.
PAGE_STATUS = {"bad": 400, "denied": 403, "missing": 404, "no-such-page": 404, "boom": 500}


def test_every_error_page_shows_no_password() -> None:
    port = closed_port()
    pages, log = run_probe(
        {
            "DATABASE_URL": url("choregarden", APP_PASSWORD, port),
            "MIGRATION_DATABASE_URL": url("choregarden_owner", OWNER_PASSWORD, port),
            "REPLICA_DATABASE_URL": url("choregarden", REPLICA_PASSWORD, port),
        },
        every_page=True,
    )
    secrets = (APP_PASSWORD, OWNER_PASSWORD, REPLICA_PASSWORD, SECRET_KEY, QUERY_TOKEN)
    for mode in ("debug", "production"):
        for page_path, status in PAGE_STATUS.items():
            assert pages[f"{page_path}_{mode}"]["status"] == status, (page_path, mode)
        assert pages[f"csrf_{mode}"]["status"] == 403
        assert "CSRF" in pages[f"csrf_{mode}"]["body"]
    assert "cannot use postgres://choregarden:" in pages["boom_debug"]["body"]  # the message
    assert "Page not found" in pages["no-such-page_debug"]["body"]
    for name, page in pages.items():
        assert leaks(page["body"], *secrets) == [], name
    assert leaks(log, *secrets) == []


def test_the_error_pages_of_a_secrets_manager_login_show_no_password() -> None:
    port = closed_port()
    secret = json.dumps({"username": "choregarden", "password": SECRET_PASSWORD})
    pages, log = run_probe(
        {
            "DB_SECRET_ID": "chore/dev/app",
            "AWS_REGION": "eu-west-1",
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "DB_HOST": "127.0.0.1",
            "DB_PORT": str(port),
            "DB_NAME": "choregarden_dev",
        },
        secret=secret,
    )
    for name, page in pages.items():
        assert page["status"] == 500, name
        if name == "sign_in_html":  # which secret the connection read, shown as it was
            assert "SecretRef(secret_id=&#x27;chore/dev/app&#x27;" in page["body"], name
        assert "Read database credentials from Secrets Manager" in log
        assert leaks(page["body"], SECRET_PASSWORD, SIGN_IN_PASSWORD, SECRET_KEY) == [], name
    assert leaks(log, SECRET_PASSWORD, SIGN_IN_PASSWORD, SECRET_KEY) == []


# -- In this process: ExceptionReporter with a request, and without one ----------------------
LOCAL_PASSWORD = "Local pw <&'\" MARKER-07"
REGISTERED = "Registered-value MARKER-08"


def fail_holding_secrets() -> None:
    """Raise while locals hold secrets in every shape a frame may show them."""
    database_url = url("choregarden", LOCAL_PASSWORD, 5432)
    conninfo = f"host=127.0.0.1 user=choregarden password={LOCAL_PASSWORD!r}"
    kwargs = {"user": "choregarden", "password": LOCAL_PASSWORD}
    state = State(5432, "choregarden_dev", LOCAL_PASSWORD, LOCAL_PASSWORD, LOCAL_PASSWORD)
    note = f"got {REGISTERED} from the secret"
    items = [database_url, ("password", LOCAL_PASSWORD)]
    assert all((conninfo, kwargs, state, note, items))
    raise RuntimeError(f"could not connect with {database_url}: {note}")


def boom(request: HttpRequest) -> HttpResponse:
    fail_holding_secrets()
    return HttpResponse()


urlpatterns = [path("boom/", boom)]


@pytest.fixture
def debug_settings(settings: Any) -> Any:
    settings.DEBUG = True
    settings.DATABASE_URL = url("choregarden", APP_PASSWORD, 5432)
    settings.MIGRATION_DATABASE_URL = url("choregarden_owner", OWNER_PASSWORD, 5432)
    settings.REPLICA_DATABASE_URL = url("choregarden", REPLICA_PASSWORD, 5432)
    settings.SENTRY_DSN = f"https://{SECRET_PASSWORD.split()[-1]}@sentry.example.com/1"
    register_secret(REGISTERED)
    return settings


def in_process_secrets() -> tuple[str, ...]:
    from django.conf import settings

    configured = [c["PASSWORD"] for c in settings.DATABASES.values() if c.get("PASSWORD")]
    return (
        APP_PASSWORD,
        OWNER_PASSWORD,
        REPLICA_PASSWORD,
        LOCAL_PASSWORD,
        REGISTERED,
        SECRET_PASSWORD,
        settings.SECRET_KEY,
        *configured,
    )


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("accept", ["text/html", "text/plain"])
def test_the_error_page_masks_locals_request_data_and_settings(
    debug_settings: Any, accept: str
) -> None:
    client = Client(raise_request_exception=False, HTTP_ACCEPT=accept)
    client.cookies["sessionid"] = COOKIE
    response = client.post(
        f"/boom/?token={QUERY_TOKEN}&page=2",
        {"username": "alice", "password": SIGN_IN_PASSWORD, "note": f"mine is {REGISTERED}"},
        HTTP_AUTHORIZATION=BEARER,
        DATABASE_URL=debug_settings.DATABASE_URL,  # runserver puts its environment in META
    )
    page = response.content.decode()
    assert response.status_code == 500
    assert "fail_holding_secrets" in page  # the frame with the locals is on the page
    assert "page" in page and "username" in page  # request data is still shown, masked
    assert leaks(page, *in_process_secrets(), SIGN_IN_PASSWORD, QUERY_TOKEN, COOKIE, BEARER) == []


@pytest.mark.parametrize("with_request", [True, False])
def test_the_exception_reporter_masks_every_secret(debug_settings: Any, with_request: bool) -> None:
    request = RequestFactory().get("/x", {"password": LOCAL_PASSWORD}) if with_request else None
    try:
        fail_holding_secrets()
    except RuntimeError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
    html, text = reporter.get_traceback_html(), reporter.get_traceback_text()
    assert "conninfo" in html  # the locals of the failed frame (the text report has none)
    for page in (html, text):
        assert "fail_holding_secrets" in page
        assert leaks(page, *in_process_secrets()) == []


def test_a_log_record_with_a_traceback_shows_no_secret(debug_settings: Any) -> None:
    try:
        fail_holding_secrets()
    except RuntimeError:
        record = logging.getLogger("django.request").makeRecord(
            "django.request",
            logging.ERROR,
            __file__,
            1,
            "Failed: %s",
            (url("choregarden", LOCAL_PASSWORD, 5432),),
            sys.exc_info(),
        )
    RedactSecretsFilter().filter(record)
    line = logging.Formatter().format(record)
    assert "could not connect with" in line
    assert leaks(line, LOCAL_PASSWORD, REGISTERED) == []


def test_every_log_handler_masks_secrets() -> None:
    # Django's DEFAULT_LOGGING handlers print a record before the root handler's filter.
    loggers = [logging.getLogger(), *map(logging.getLogger, logging.root.manager.loggerDict)]
    unfiltered = [
        f"{logger.name}: {handler}"
        for logger in loggers
        for handler in logger.handlers
        if not isinstance(handler, logging.NullHandler)  # a library's, writes nothing
        and type(handler).__module__.split(".")[0] != "_pytest"  # caplog, this run's
        and not any(isinstance(f, RedactSecretsFilter) for f in handler.filters)
    ]
    assert unfiltered == []


# Away from the frames below: the page shows the source lines around each frame.
HYPOTHESIS_MARKER = "MARKER-11"
PASSWORD_TEXT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")),
    min_size=6,
    max_size=24,
)


def raise_with(target: str) -> None:
    raise OSError(f"cannot reach {target}")


@settings(max_examples=25, deadline=None)
@given(password=PASSWORD_TEXT)
def test_no_password_in_a_database_url_reaches_the_page(password: str) -> None:
    from django.conf import settings as django_settings

    # The locals and the message hold the URL only: what masks it is its shape.
    target = url("choregarden", f"Hyp{password}{HYPOTHESIS_MARKER}", 5432)
    try:
        raise_with(target)
    except OSError:
        reporter = get_exception_reporter_class(None)(None, *sys.exc_info())
    original = django_settings.DATABASE_URL
    django_settings.DATABASE_URL = target
    try:
        html, text = reporter.get_traceback_html(), reporter.get_traceback_text()
    finally:
        django_settings.DATABASE_URL = original
    for page in (html, text):
        assert "raise_with" in page
        assert HYPOTHESIS_MARKER not in page
