"""The project's settings with the fault tests' URLs (tests/dbops/web/fault_urls.py)."""

from choregarden.settings import *  # noqa: F403

ROOT_URLCONF = "tests.dbops.web.fault_urls"
