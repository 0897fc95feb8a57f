"""Django's PostgreSQL backend, logging in with credentials from AWS Secrets Manager.

ENGINE "dbops.db.backends.postgresql". Each new connection asks dbops.connections.config for
what settings leave open (the local cluster's address, login and CA). Without a "SECRET"
entry in the database settings it is Django's backend, except that a connection that cannot
be opened (no database configured, unreachable, refused login, unreadable secret) raises
DatabaseUnavailable with one line that names the setting to fix. With a "SECRET" ({"ID",
"REGION", "SETTING"}), every new physical connection, pooled or not, logs in with the
process's cached secret, and a refused password makes it read the secret again once
(rotation). Django's pool builds its connection keywords once, when the pool is made, so the
pool gets a connection class that puts the current credentials in at each connect instead.
That class also remembers the pool's last failed connect, and the backend which request
holds each pooled connection, so that a pool timeout says whether the pool was exhausted or
the server unreachable (dbops.connections.pooltimeout).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, ClassVar

import psycopg
from django.core.exceptions import ImproperlyConfigured
from django.db.backends.postgresql import base as postgresql
from django.db.backends.postgresql import client as postgresql_client
from django.utils.functional import cached_property

from dbops.connections.config import REPLICA_KEY, configured, resolve
from dbops.connections.errors import not_configured, unavailable
from dbops.connections.pooltimeout import (
    ConnectFailures,
    RecordingConnection,
    checkouts,
    known_down,
    pool_timeout,
)
from dbops.connections.secrets import DatabaseCredentials, SecretError, SecretRef

Overlay = Callable[[DatabaseCredentials], dict[str, Any]]


def login_params(
    creds: DatabaseCredentials,
    *,
    ref: SecretRef,
    host_set: bool,
    port_set: bool,
    name_set: bool,
) -> dict[str, Any]:
    """Return the login from the secret, and the address parts that settings leave out."""
    params: dict[str, Any] = {"user": creds.username, "password": creds.password}
    if not host_set:
        if not creds.host:
            raise SecretError(
                f"{ref.describe()} has no 'host' and no host is configured: add 'host' to the "
                "secret, or set DB_HOST (or the host of the database URL)."
            )
        params["host"] = creds.host
    if not port_set and creds.port:
        params["port"] = creds.port
    if not name_set and creds.dbname:
        params["dbname"] = creds.dbname
    return params


class SecretConnection(psycopg.Connection):  # type: ignore[type-arg]
    """A pool's connection class: each connect logs in with the secret's current value."""

    secret: ClassVar[SecretRef]
    overlay: ClassVar[Overlay]

    @classmethod
    def connect(cls, conninfo: str = "", **kwargs: Any) -> Any:  # type: ignore[override]
        parent = super().connect
        return cls.secret.connect(
            lambda creds: parent(conninfo, **{**kwargs, **cls.overlay(creds)})
        )


def check_or_sweep(conn: Any) -> None:
    """The pool's check before it hands out a connection; a broken one sweeps the others.

    One broken connection means its idle siblings are likely broken too (the server
    restarted, failed over, or terminated the sessions). psycopg_pool would find them one
    per getconn, sleeping a doubling delay after each (1, 2, 4 s ...): with five dead
    connections the request's DB_POOL_TIMEOUT ran out first. Checking every idle one now
    replaces them all at once.
    """
    from psycopg_pool import ConnectionPool

    try:
        ConnectionPool.check_connection(conn)
    except Exception:
        pool = getattr(conn, "_pool", None)
        if pool is not None:
            pool.check()
        raise


class DatabaseClient(postgresql_client.DatabaseClient):
    """`dbshell` logs in with the secret too (the password goes to psql as PGPASSWORD)."""

    def runshell(self, parameters: list[str]) -> None:
        connection = self.connection
        # Connect once first: a failure is then DatabaseUnavailable's one line, not psql's
        # lines followed by Django's "returned non-zero exit status 2".
        connection.ensure_connection()
        connection.close()
        original = connection.settings_dict
        connection.settings_dict = connection.resolved_settings()
        try:
            return super().runshell(parameters)
        finally:
            connection.settings_dict = original


class DatabaseWrapper(postgresql.DatabaseWrapper):
    client_class = DatabaseClient

    def secret_ref(self) -> SecretRef | None:
        config = self.settings_dict.get("SECRET")
        if not config:
            return None
        return SecretRef(config["ID"], config.get("REGION") or "", config.get("SETTING") or "")

    def secret_overlay(self, ref: SecretRef) -> Overlay:
        s = self.settings_dict
        # NAME None means "the postgres database" (Django's no-db connection): keep it.
        return partial(
            login_params,
            ref=ref,
            host_set=bool(s.get("HOST")),
            port_set=bool(s.get("PORT")),
            name_set=s.get("NAME") != "",
        )

    def resolved_settings(self) -> dict[str, Any]:
        """Return the settings with the local cluster and the secret's login filled in."""
        resolved = resolve(self.settings_dict)
        ref = self.secret_ref()
        return resolved if ref is None else self.settings_with_secret(ref, ref.get(), resolved)

    def settings_with_secret(
        self, ref: SecretRef, creds: DatabaseCredentials, base: dict[str, Any]
    ) -> dict[str, Any]:
        """Return `base` with the secret's login, and its address where it has none."""
        params = self.secret_overlay(ref)(creds)
        filled = {**base, "USER": params["user"], "PASSWORD": params["password"]}
        for key, setting in (("host", "HOST"), ("port", "PORT"), ("dbname", "NAME")):
            if key in params:
                filled[setting] = params[key]
        if filled.get("NAME") == "":
            raise SecretError(
                f"No database name: {ref.describe()} has no 'dbname' and none is "
                "configured: set DB_NAME (or the database URL's path), or add 'dbname' "
                "to the secret."
            )
        return filled

    def get_connection_params(self) -> dict[str, Any]:
        if not configured(self.settings_dict):
            raise not_configured()
        try:
            return self._connection_params()
        except ImproperlyConfigured as err:  # SecretError, or Django's own (no NAME)
            raise unavailable(self.alias, self.settings_dict, err) from err

    def _connection_params(self) -> dict[str, Any]:
        original = self.settings_dict
        # Django reads (and checks) the settings to build the keywords; wrappers are per thread.
        self.settings_dict = self.resolved_settings()
        try:
            return super().get_connection_params()
        finally:
            self.settings_dict = original

    @property
    def pool(self) -> Any:
        pool = super().pool
        if pool is None or issubclass(pool.connection_class, RecordingConnection):
            return pool
        # The pool is made closed (open=False) and opened on first use, after this.
        ref = self.secret_ref()
        attrs: dict[str, Any] = {"failures": ConnectFailures()}
        bases: tuple[type, ...] = (RecordingConnection, pool.connection_class)
        if ref is not None:
            bases = (RecordingConnection, SecretConnection)
            attrs.update(secret=ref, overlay=staticmethod(self.secret_overlay(ref)))
        pool.connection_class = type("PoolConnection", bases, attrs)
        if pool._check is not None:  # CONN_HEALTH_CHECKS; Django passes no way to set it
            pool._check = check_or_sweep
        return pool

    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        try:
            return self._new_connection(conn_params)
        except (psycopg.Error, SecretError) as err:  # PoolTimeout is a psycopg.Error too
            raise unavailable(self.alias, self.settings_dict, err, conn_params) from err

    def init_connection_state(self) -> None:
        super().init_connection_state()
        if self.settings_dict.get(REPLICA_KEY):
            from dbops.connections.replicas import require_standby

            try:
                require_standby(self)
            except ImproperlyConfigured:
                # Refused: never a connection to the primary under the replica's name.
                self.connection.close()
                self.connection = None
                raise

    @cached_property
    def wrap_database_errors(self) -> Any:
        # Made once, as Django's: it wraps every query, and looks at the settings only when
        # one fails (a replica's failure marks it down for the router).
        from dbops.connections.replicas import ReplicaErrorWrapper

        return ReplicaErrorWrapper(self)

    def _close(self) -> None:
        if self.connection is not None and self.pool is not None:
            checkouts.release(self.connection)
        super()._close()

    def _new_connection(self, conn_params: dict[str, Any]) -> Any:
        ref = self.secret_ref()
        if self.pool is not None:
            from psycopg_pool import PoolTimeout  # imported by Django with the pool

            down = known_down(self.pool)
            if down is not None:
                raise down
            try:
                conn = super().get_new_connection(conn_params)
            except PoolTimeout as err:
                raise pool_timeout(self.alias, self.pool, err) from err
            checkouts.take(conn)
            return conn
        if ref is None:
            return super().get_new_connection(conn_params)
        overlay = self.secret_overlay(ref)
        parent = super().get_new_connection
        return ref.connect(lambda creds: parent({**conn_params, **overlay(creds)}))
