"""`manage.py dbmaintenance`: vacuum, reindex and housekeeping within a window and a budget.

window.py parses the window and the budget; bloat.py finds the tables over the dead-row
thresholds and the indexes whose estimated bloat is over MAINTENANCE_INDEX_BLOAT_RATIO;
plan.py orders the steps by value; run.py holds the lock and runs them (docs/operations.md,
"Maintenance windows").
"""

from __future__ import annotations


class MaintenanceError(Exception):
    """A maintenance run refused or failed; the message says what was (not) done."""
