"""Monthly partitions of the large history tables: created ahead, archived, restored.

Modules: tables (the partitions in the database, months, create), content (a table's row
count and order-independent content hash), store (archive objects in the backup storage:
written once, read back checked), manifest (a month's parts, read strictly, written as
new versions), archive (pre-check, then detach, export, verify, drop), restore (pre-check,
then load a month back, verified against its manifest).
"""

from __future__ import annotations


class PartitionError(RuntimeError):
    """A partition step failed or was refused: the message says which month and what to do."""


class ManifestError(PartitionError):
    """An archive's manifest or one of its parts is missing, unreadable or inconsistent."""
