"""Backups of the project's database: pg_dump to storage, list, prune, restore, verify.

Modules: names (the file names this project owns), store (objects in the STORAGES["backups"]
storage, partials and their writers), manifest (read strictly), progress, dump (create),
prune (its plan), restore (pg_restore into one database), targets (databases: names,
inspection, create, swap, drop), restore_plan (restore's pre-checks, plan and run), toc (the
archive's table of contents), fingerprint (row counts and content hashes), verify. pg_dump
and pg_restore run through dbops.connections.pgtools, as the owner role
(dbops.connections.config).
"""

from __future__ import annotations


class BackupError(RuntimeError):
    """A backup, restore or verify step failed; the message says what to do."""
