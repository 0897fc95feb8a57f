"""A throwaway PostgreSQL cluster with SSL for development and tests (docs/architecture.md, D6)."""

from __future__ import annotations

from dbops.localdb.cluster import LocalCluster, default_cluster
from dbops.localdb.errors import LocalDBError, UnsafeFolderError

__all__ = ["LocalCluster", "LocalDBError", "UnsafeFolderError", "default_cluster"]
