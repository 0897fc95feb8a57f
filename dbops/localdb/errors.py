"""Errors of the local cluster."""

from __future__ import annotations


class LocalDBError(RuntimeError):
    """The local cluster could not be set up, started or stopped."""


class UnsafeFolderError(LocalDBError):
    """The cluster's folder or one of its files could be changed by another user."""
