"""gunicorn.conf.py: sizes from the CPU count and the pool, timeouts above the database's."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest

CONF = Path(__file__).resolve().parents[2] / "gunicorn.conf.py"
VARIABLES = (
    "DJANGO_ENV",
    "DB_POOL_MAX_SIZE",
    "DB_POOL_TIMEOUT",
    "DB_STATEMENT_TIMEOUT",
    "WEB_CONCURRENCY",
    "GUNICORN_THREADS",
    "GUNICORN_ACCESS_LOG",
    "LOG_FORMAT",
    "PORT",
)


def load(monkeypatch: pytest.MonkeyPatch, **env: str) -> dict[str, Any]:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(CONF))


def test_production_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    conf = load(monkeypatch, DJANGO_ENV="production")
    assert conf["worker_class"] == "gthread"
    assert conf["workers"] == 2  # at least two, so that a restarting worker is not all
    assert conf["threads"] == 4
    assert conf["bind"] == ["0.0.0.0:8000"]
    # Above the statement timeout (30 s) and the pool's wait (10 s): the database's own
    # timeouts end a slow request before gunicorn kills a worker.
    assert conf["timeout"] > 30 + 10
    assert conf["graceful_timeout"] > 30
    assert conf["max_requests"] > 0 and 0 < conf["max_requests_jitter"] < conf["max_requests"]
    assert conf["keepalive"] > 60  # the ALB's idle timeout
    assert conf["accesslog"] is None  # Django's request line is the access log
    assert "%(M)s" in conf["access_log_format"]  # the duration, when it is turned on
    assert conf["control_socket_disable"] is True  # no socket shared by every server


def test_sizes_and_timeouts_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    conf = load(
        monkeypatch,
        WEB_CONCURRENCY="3",
        GUNICORN_THREADS="2",
        DB_POOL_MAX_SIZE="2",
        DB_STATEMENT_TIMEOUT="90s",
        PORT="9000",
        GUNICORN_ACCESS_LOG="-",
        LOG_FORMAT="json",
    )
    assert (conf["workers"], conf["threads"], conf["bind"]) == (3, 2, ["0.0.0.0:9000"])
    assert conf["timeout"] > 90 + 10 and conf["graceful_timeout"] > 90
    assert conf["logconfig_dict"]["loggers"]["gunicorn.access"]["handlers"] == ["console"]
    formatter = conf["logconfig_dict"]["formatters"]["operator"]["()"]
    assert formatter == "dbops.web.logformat.JsonFormatter"


def test_threads_default_to_the_pool_size_when_it_is_smaller(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load(monkeypatch, DB_POOL_MAX_SIZE="3")["threads"] == 3


def test_the_worker_timeout_follows_the_statement_timeout_in_any_unit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert load(monkeypatch, DB_STATEMENT_TIMEOUT="2min")["timeout"] > 120 + 10
    assert load(monkeypatch, DB_STATEMENT_TIMEOUT="1500ms")["graceful_timeout"] >= 2
    # Off in the database: gunicorn's timeout is the only bound, at the default's distance.
    assert load(monkeypatch, DB_STATEMENT_TIMEOUT="0")["timeout"] > 30 + 10


@pytest.mark.parametrize(
    "env, message",
    [
        (
            {"GUNICORN_THREADS": "8", "DB_POOL_MAX_SIZE": "4"},
            "GUNICORN_THREADS=8 is more than DB_POOL_MAX_SIZE=4",
        ),
        ({"WEB_CONCURRENCY": "two"}, "WEB_CONCURRENCY='two' must be a whole number"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT='xml' is not a log format"),
        # The settings' form, with a unit: a bare number is refused there and here alike.
        ({"DB_STATEMENT_TIMEOUT": "30"}, "DB_STATEMENT_TIMEOUT='30' has no unit"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    with pytest.raises(SystemExit, match=message):
        load(monkeypatch, **env)
