from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.db import connection
from django.test import override_settings


@pytest.fixture
def no_margin() -> Iterator[None]:
    """The watermark without its safety margin: rows made by the test are behind it at once."""
    with override_settings(ANALYTICS_REFRESH_MARGIN=0):
        yield


@pytest.fixture
def owner(pg_server: Any, transactional_db: None) -> Iterator[psycopg.Connection[Any]]:
    """The owner role on the test database (the tests run as the application role)."""
    with psycopg.connect(**pg_server.conninfo(connection.settings_dict["NAME"])) as conn:
        conn.autocommit = True
        yield conn
