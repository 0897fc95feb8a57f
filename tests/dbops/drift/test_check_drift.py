"""check_drift: the result behind `schemadrift`, read in-process."""

from __future__ import annotations

import pytest
from django.db import connection

from dbops.drift.check import UnknownApp, check_drift


def test_an_unknown_app_is_refused_before_the_database_is_read() -> None:
    with pytest.raises(
        UnknownApp, match=r"No installed app with label 'nosuchapp'.*give installed"
    ):
        check_drift(connection, ["nosuchapp"])
