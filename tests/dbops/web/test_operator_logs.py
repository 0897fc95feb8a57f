"""Log lines for operators: UTC time, level, logger, process, thread, request id, and one
line per request with method, path, status and duration; text or JSON; secrets masked."""

from __future__ import annotations

import io
import json
import logging.config
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django.urls import path
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from dbops.web.logformat import logging_config
from dbops.web.requestlog import MAX_REQUEST_ID_LENGTH, request_id_for, valid_request_id

SECRET = "hunter2-Xq9Lm"
UTC_TIME = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def fail_with_password(request: HttpRequest) -> HttpResponse:
    raise RuntimeError(f"cannot connect: password={SECRET} refused")


urlpatterns = [path("fail/", fail_with_password), path("admin/", admin.site.urls)]


@pytest.fixture(params=["text", "json"])
def log_format(request: Any) -> str:
    return str(request.param)


@pytest.fixture
def log_lines(log_format: str) -> Iterator[Callable[[], list[str]]]:
    """The project's logging with `log_format`; its console's lines so far."""
    logging.config.dictConfig(logging_config(log_format, "INFO", "INFO"))
    (console,) = logging.getLogger().handlers
    buffer = io.StringIO()
    console.setStream(buffer)  # type: ignore[attr-defined]

    def lines() -> list[str]:
        return buffer.getvalue().splitlines()

    yield lines
    logging.config.dictConfig(settings.LOGGING)


def request_lines(lines: list[str], log_format: str) -> list[dict[str, Any]]:
    """The request log's lines, as fields."""
    found = []
    for line in lines:
        if log_format == "json":
            entry = json.loads(line)
            if entry["logger"] == "choregarden.request":
                found.append(entry)
            continue
        match = re.fullmatch(
            rf"(?P<time>{UTC_TIME}) (?P<level>\w+) (?P<logger>choregarden\.request) "
            r"pid=(?P<process>\d+) thread=(?P<thread>\S+) request_id=(?P<request_id>\S+) "
            r"(?P<method>[A-Z]+) (?P<path>\S+) (?P<status>\d{3}) (?P<duration_ms>[0-9.]+) ms",
            line,
        )
        if match:
            found.append(match.groupdict())
    return found


@pytest.mark.django_db
def test_a_request_logs_one_line_with_time_level_process_thread_id_and_outcome(
    log_lines: Callable[[], list[str]], log_format: str
) -> None:
    response = Client().get("/admin/login/")
    assert response.status_code == 200
    (line,) = request_lines(log_lines(), log_format)
    assert re.fullmatch(UTC_TIME, line["time"])
    assert line["level"] == "INFO"
    assert int(line["process"]) > 0
    assert line["thread"]
    assert line["request_id"] == response["X-Request-ID"]
    assert GENERATED_ID.fullmatch(line["request_id"])
    assert (line["method"], line["path"], int(line["status"])) == ("GET", "/admin/login/", 200)
    assert float(line["duration_ms"]) > 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    "header, value",
    [
        ("HTTP_X_REQUEST_ID", "req-42.abc"),
        ("HTTP_X_AMZN_TRACE_ID", "Root=1-67891233-abcdef012345678912345678;Sampled=1"),
    ],
)
def test_the_load_balancers_request_id_is_logged_and_returned(
    log_lines: Callable[[], list[str]], log_format: str, header: str, value: str
) -> None:
    response = Client().get("/admin/login/", **{header: value})
    assert response["X-Request-ID"] == value
    (line,) = request_lines(log_lines(), log_format)
    assert line["request_id"] == value


@pytest.mark.django_db
def test_a_forged_request_id_is_replaced(
    log_lines: Callable[[], list[str]], log_format: str
) -> None:
    forged = "x\n2026-01-01T00:00:00.000Z ERROR fake"
    response = Client().get("/admin/login/", HTTP_X_REQUEST_ID=forged)
    assert GENERATED_ID.fullmatch(response["X-Request-ID"])
    lines = log_lines()
    assert not any("fake" in line for line in lines)
    (line,) = request_lines(lines, log_format)
    assert line["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
@override_settings(ROOT_URLCONF=__name__, DEBUG=False)
def test_an_error_keeps_its_traceback_in_the_log_masked_and_off_the_page(
    log_lines: Callable[[], list[str]], log_format: str
) -> None:
    response = Client(raise_request_exception=False).get("/fail/", HTTP_X_REQUEST_ID="err-1")
    assert response.status_code == 500
    assert b"Traceback" not in response.content
    assert SECRET.encode() not in response.content
    lines = log_lines()
    text = "\n".join(lines)
    assert SECRET not in text
    if log_format == "json":
        entries = [json.loads(line) for line in lines]
        (error,) = [e for e in entries if e["level"] == "ERROR"]
        assert error["request_id"] == "err-1"
        assert "password=********" in error["exception"]
        assert "Traceback (most recent call last)" in error["exception"]
        assert len(lines) == len(entries)  # the traceback stays inside its line
    else:
        assert re.search(rf"{UTC_TIME} ERROR django.request .* request_id=err-1 ", text)
        assert "Traceback (most recent call last)" in text
        assert "RuntimeError: cannot connect: password=******** refused" in text
    (line,) = request_lines(lines, log_format)
    assert (line["path"], int(line["status"])) == ("/fail/", 500)


@hypothesis_settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=MAX_REQUEST_ID_LENGTH + 20))
def test_a_request_id_is_the_header_when_plain_and_short_else_a_new_one(value: str) -> None:
    request = RequestFactory().get("/", HTTP_X_REQUEST_ID=value)
    rid = request_id_for(request)
    assert valid_request_id(rid)
    plain = 0 < len(value) <= MAX_REQUEST_ID_LENGTH and re.fullmatch(r"[\w.:;=/+-]+", value, re.A)
    assert (rid == value) == bool(plain)
