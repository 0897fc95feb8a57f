"""The project's settings with connection thresholds any database reaches (exit-code tests).

HEALTH_TEST_LEVEL=warning makes the connections check a warning; =critical, critical.
"""

import os

from choregarden.settings import *  # noqa: F403

DB_HEALTH_THRESHOLDS = {
    "connections": {
        "warning": 0.01,
        "critical": 0.02 if os.environ.get("HEALTH_TEST_LEVEL") == "critical" else 100,
    }
}
