"""The project's settings with a table-sizes check that fails (exit-code tests).

A negative LIMIT is refused by PostgreSQL: the check reports that it could not run, and
`dbhealth --record` cannot store a snapshot without the sizes.
"""

from choregarden.settings import *  # noqa: F403

DB_HEALTH_THRESHOLDS = {"table_sizes": {"top": -1}}
