"""A throwaway PostgreSQL cluster with SSL for development and tests (docs/architecture.md, D6)."""

from __future__ import annotations

from dbops.localdb.cluster import LocalCluster, LocalDBError, default_cluster

__all__ = ["LocalCluster", "LocalDBError", "default_cluster"]
