"""The project's settings with the fault tests' URLs (tests/dbops/fault_urls.py)."""

from choregarden.settings import *  # noqa: F403

ROOT_URLCONF = "tests.dbops.fault_urls"
