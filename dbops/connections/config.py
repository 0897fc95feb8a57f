"""The one owner of connection parameters (D8): which server, which role, how it logs in.

Roles and their DATABASES aliases: "app" is `default` (the application: CRUD, bounded
waits, pooled in servers), "owner" is `owner` (DDL: migrations, backups, partitions,
roles; no timeouts, no pool), "replica" is `replica` (read-only reports), and
"superuser" exists on the local cluster only. Settings read the environment and call
`databases()` to turn it into DATABASES; everything that connects asks here, at
connection time, for what the settings left open: the local cluster's address, login
and CA (dbops.localdb), and the login a Secrets Manager secret holds
(dbops.connections.secrets). Nobody else parses a URL or reads a secret.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from django.core.exceptions import ImproperlyConfigured

from dbops.connections.waits import session_options
from sqlmigrations.redact import register_secret

if TYPE_CHECKING:
    import psycopg

    from dbops.localdb import LocalCluster

ENGINE = "dbops.db.backends.postgresql"
ROLE_ALIASES = {"app": "default", "owner": "owner", "replica": "replica"}
OWNER_ALIAS = ROLE_ALIASES["owner"]
ROLES = (*ROLE_ALIASES, "superuser")
# Settings keys of a DATABASES entry besides Django's: the variables that configure the
# connection (messages name them), and the local cluster's role when it is the server.
SETTING_KEY = "SETTING"
LOCAL_KEY = "LOCAL"
REPLICA_KEY = "REPLICA"
LOCAL_HOSTS = ("127.0.0.1", "localhost")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
APPLICATION_NAME = "choregarden"
CONNECT_TIMEOUT = 10


@dataclass(frozen=True)
class ConnInfo(Mapping[str, Any]):
    """One database reached as one role: libpq's keywords, usable as `psycopg.connect(**info)`."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    dbname: str
    sslmode: str = "verify-full"
    sslrootcert: str = ""
    application_name: str = ""
    connect_timeout: int | None = None
    options: str = ""
    # The variables that configure it, for messages; not a libpq keyword.
    setting: str = field(default="", compare=False)

    def on(self, dbname: str) -> ConnInfo:
        """Return the same server and role on another database."""
        return replace(self, dbname=dbname)

    def named(self, application_name: str) -> ConnInfo:
        """Return the same connection under another application_name (pg_stat_activity)."""
        return replace(self, application_name=application_name)

    def _keywords(self) -> dict[str, Any]:
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "setting" and getattr(self, f.name) not in ("", None)
        }

    def __getitem__(self, key: str) -> Any:
        return self._keywords()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._keywords())

    def __len__(self) -> int:
        return len(self._keywords())

    def url(self, *, database: str | None = None) -> str:
        """Return a postgres:// URL with the password in it: for a child's environment only."""
        return (
            f"postgres://{quote(self.user, safe='')}:{quote(self.password, safe='')}@"
            f"{self.host}:{self.port}/{database or self.dbname}"
        )


# -- settings: the environment's variables become DATABASES --------------------------------


@dataclass(frozen=True)
class DatabaseEnvironment:
    """The database variables of the environment, as settings.py read them."""

    production: bool = False
    database_url: str = ""
    migration_database_url: str = ""
    replica_database_url: str = ""
    secret_id: str = ""
    migration_secret_id: str = ""
    region: str = ""
    name: str = ""
    host: str = ""
    port: str = ""
    sslmode: str = "verify-full"
    sslrootcert: str = ""
    pool: Mapping[str, Any] | None = None  # psycopg_pool's options; None: no pool
    timeouts: Mapping[str, int] = field(default_factory=dict)
    pooler: str = ""  # DB_POOLER: DATABASE_URL is a transaction pooler ("pgbouncer", "rds-proxy")
    conn_max_age: int = 0  # DB_CONN_MAX_AGE, behind a pooler


POOLERS = ("pgbouncer", "rds-proxy")


def databases(env: DatabaseEnvironment) -> dict[str, dict[str, Any]]:
    """Return DATABASES: `default` (app), `owner`, and `replica` when one is configured."""
    if env.production and not (env.database_url or env.secret_id or env.migration_secret_id):
        raise ImproperlyConfigured(
            "DATABASE_URL is not set in production: set it to the application role's URL, "
            "postgres://choregarden:<password>@<rds-endpoint>:5432/choregarden_prod, or set "
            "DB_SECRET_ID to the Secrets Manager secret that holds its credentials."
        )
    if env.production and not env.sslrootcert:
        raise ImproperlyConfigured(
            "DB_SSLROOTCERT is not set in production: verify-full needs the CA bundle; set it "
            "to the path of the RDS CA bundle (global-bundle.pem)."
        )
    owner_set = bool(env.migration_database_url or env.migration_secret_id)
    bounded = True  # the application role's sessions never wait unbounded (DB_TIMEOUTS)
    if env.database_url or env.secret_id:
        app = _entry(env, env.database_url, "DATABASE_URL", env.secret_id, "DB_SECRET_ID")
    elif env.migration_secret_id:
        # Only the owner's secret (the migration handler): the default database is the owner's.
        app, bounded = _owner_entry(env), False
    else:
        # With no URL outside production, the project runs its own cluster (D6): its
        # address and logins are read when a connection is made (resolve).
        app = _local_entry(env, "app")
    if owner_set:
        owner = _owner_entry(env)
        if not owner["NAME"]:
            # The owner migrates the application's database unless told otherwise.
            owner["NAME"] = app.get("NAME", "")
    elif app.get(LOCAL_KEY):
        owner = _local_entry(env, "owner")
    else:
        # One URL for both roles: the owner's jobs run on it without the app's timeouts.
        owner = _entry(env, env.database_url, "DATABASE_URL", env.secret_id, "DB_SECRET_ID")
    if env.pooler:
        behind_pooler(app, env)
        if not owner_set and not app.get(LOCAL_KEY):
            # No MIGRATION_DATABASE_URL: the owner's jobs would go through the pooler too;
            # migrate refuses it by this mark (sqlmigrations.session).
            owner["POOLER"] = env.pooler
    elif bounded:
        # A URL's own `options` come after the timeouts and win.
        options = app["OPTIONS"]
        options["options"] = session_options(env.timeouts, str(options.get("options", "")))
    if env.pool is not None and not env.pooler:
        app["OPTIONS"]["pool"] = dict(env.pool)
        app["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool
    found = {"default": app, OWNER_ALIAS: owner}
    if env.replica_database_url:
        # Read-only reporting queries (dbops.connections.routers); the server refuses writes
        # on it too. An RDS replica has the primary's roles: with DB_SECRET_ID it logs in
        # with that secret.
        replica = _entry(
            env, env.replica_database_url, "REPLICA_DATABASE_URL", env.secret_id, "DB_SECRET_ID"
        )
        options = replica["OPTIONS"]
        options["options"] = (
            "-c default_transaction_read_only=on "
            + session_options(env.timeouts, str(options.get("options", "")))
        ).strip()
        if env.pool is not None:
            options["pool"] = dict(env.pool)
            replica["CONN_MAX_AGE"] = 0
        replica["TEST"] = {"MIRROR": "default"}
        # Each new connection makes sure it is a standby (refused if writable).
        replica[REPLICA_KEY] = True
        found["replica"] = replica
    return found


def behind_pooler(entry: dict[str, Any], env: DatabaseEnvironment) -> None:
    """Make a DATABASES entry fit a transaction-mode pooler (PgBouncer, RDS Proxy).

    A server connection is the client's for one transaction only, so: no server-side
    cursors (Django's iterator() would declare a cursor in one transaction and fetch in
    the next), no prepared statements (psycopg prepares a query after 5 runs, on a server
    connection the next transaction may not get; PgBouncer 1.18 cannot track them), no
    pool of our own (the pooler pools), no `options` startup parameter (PgBouncer 1.18
    refuses it: the application role's timeouts are its own defaults in the database,
    `dbroles provision`), and persistent client connections: the pooler keeps the server
    connections, so a process keeps its connection to the pooler for DB_CONN_MAX_AGE
    seconds instead of a TLS handshake per request.
    """
    entry["POOLER"] = env.pooler
    entry["DISABLE_SERVER_SIDE_CURSORS"] = True
    entry["CONN_MAX_AGE"] = env.conn_max_age
    options = entry["OPTIONS"]
    options["prepare_threshold"] = None
    options.pop("pool", None)
    options.pop("options", None)


def _owner_entry(env: DatabaseEnvironment) -> dict[str, Any]:
    return _entry(
        env,
        env.migration_database_url,
        "MIGRATION_DATABASE_URL",
        env.migration_secret_id,
        "MIGRATION_DB_SECRET_ID",
    )


def _local_entry(env: DatabaseEnvironment, role: str) -> dict[str, Any]:
    options: dict[str, Any] = {
        "sslmode": env.sslmode,
        "application_name": APPLICATION_NAME,
        "connect_timeout": CONNECT_TIMEOUT,
    }
    if env.sslrootcert:
        options["sslrootcert"] = env.sslrootcert
    return {
        "ENGINE": ENGINE,
        "NAME": "",
        "USER": "",
        "PASSWORD": "",
        "HOST": "",
        "PORT": "",
        LOCAL_KEY: role,
        SETTING_KEY: "",
        "OPTIONS": options,
        "CONN_HEALTH_CHECKS": True,
    }


def parse_url(url: str, variable: str) -> dict[str, Any]:
    """Turn a postgres:// URL into Django's settings keys; errors never echo the URL."""
    import environ

    try:
        with warnings.catch_warnings():
            # django-environ warns with the parsed URL, password included, about a scheme
            # it does not know; the ENGINE check below says what to do instead.
            warnings.simplefilter("ignore")
            config = environ.Env.db_url_config(url)
    except Exception:  # noqa: BLE001 - the message must not echo the URL
        raise ImproperlyConfigured(
            f"{variable} is not a valid database URL: use postgres://USER:PASSWORD@HOST:PORT/NAME."
        ) from None
    if config.get("ENGINE") != "django.db.backends.postgresql":
        raise ImproperlyConfigured(
            f"{variable} does not point at PostgreSQL: use a postgres:// URL "
            "(this project supports PostgreSQL only)."
        )
    return dict(config)


def _entry(
    env: DatabaseEnvironment, url: str, variable: str, secret_id: str, secret_variable: str
) -> dict[str, Any]:
    """Turn a URL (or a secret id) into a DATABASES entry with its SSL options."""
    if url:
        config = parse_url(url, variable)
    else:
        # Everything but the address comes from the secret; DB_* fill what it leaves out.
        config = {"NAME": env.name, "HOST": env.host, "PORT": env.port, "USER": "", "PASSWORD": ""}
    # Django's backend, plus credentials from Secrets Manager when a secret id is set.
    config["ENGINE"] = ENGINE
    config[SETTING_KEY] = " and ".join(
        name for name, value in ((variable, url), (secret_variable, secret_id)) if value
    )
    if secret_id:
        config["SECRET"] = {"ID": secret_id, "REGION": env.region, "SETTING": secret_variable}
    options = config.setdefault("OPTIONS", {})
    sslmode = options.setdefault("sslmode", env.sslmode)
    if env.production and sslmode != "verify-full":
        raise ImproperlyConfigured(
            f"The sslmode for {variable} is {sslmode!r}; production requires verify-full: "
            "set DB_SSLMODE=verify-full (and remove sslmode from the URL), with "
            "DB_SSLROOTCERT pointing at the RDS CA bundle."
        )
    if env.sslrootcert:
        options.setdefault("sslrootcert", env.sslrootcert)
    options.setdefault("application_name", APPLICATION_NAME)
    options.setdefault("connect_timeout", CONNECT_TIMEOUT)
    config["CONN_HEALTH_CHECKS"] = True
    return config


def connect_directly() -> None:
    """Drop the pools of a one-off process (a management command) unless DB_POOL asked for one.

    A command is one process doing one job: a pool would only hold connections it never
    reuses and turn a refused connection into a DB_POOL_TIMEOUT-long wait.
    """
    from django.conf import settings

    if getattr(settings, "DB_POOL", None) is not None:
        return
    for config in settings.DATABASES.values():
        options = config.get("OPTIONS", {})
        if "pool" in options:
            config["OPTIONS"] = {k: v for k, v in options.items() if k != "pool"}


# -- connection time: the local cluster and the secret fill in what settings left open ------


def local_cluster() -> LocalCluster | None:
    """Return this checkout's cluster when it has been created (never in production)."""
    from django.conf import settings

    if getattr(settings, "PRODUCTION", False):
        return None
    from dbops.localdb import LocalDBError, default_cluster

    cluster = default_cluster()
    try:
        return cluster if cluster.initialised() else None
    except LocalDBError as err:  # a folder another user could change: named, with the fix
        raise ImproperlyConfigured(str(err)) from None


def at_local_cluster(host: Any, port: Any) -> LocalCluster | None:
    """Return the local cluster when `host`:`port` is its address (the primary's, or its
    PgBouncer's or replica's, which share its CA), else None."""
    if host not in LOCAL_HOSTS or not port:
        return None
    cluster = local_cluster()
    if cluster is None:
        return None
    ports = {cluster.state().port}
    for part in (cluster.pgbouncer, cluster.replica):
        if part.exists():
            ports.add(part.port())
    return cluster if str(port) in {str(p) for p in ports} else None


def uses_local_cluster(alias: str = "default") -> bool:
    """Tell whether settings leave `alias` to the local cluster (no URL, no secret)."""
    from django.db import connections

    return bool(connections[alias].settings_dict.get(LOCAL_KEY))


def configured(config: Mapping[str, Any]) -> bool:
    """Tell whether settings gave this connection an address (not libpq's defaults)."""
    if config.get(LOCAL_KEY):
        return local_cluster() is not None
    return bool(config.get(SETTING_KEY) or config.get("HOST") or config.get("SECRET"))


def resolve(config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a connection's settings with the local cluster filled in, where it is the server.

    A local role gets the cluster's address, login and CA; a URL at the cluster's address
    gets its CA unless DB_SSLROOTCERT (or the URL) names one. Read at each new connection:
    `devdb start` may create the cluster after this process started.
    """
    from dbops.connections.errors import not_configured

    resolved = dict(config)
    options = dict(config.get("OPTIONS", {}))
    role = config.get(LOCAL_KEY)
    if role:
        cluster = local_cluster()
        if cluster is None:
            raise not_configured()
        info = cluster.conninfo(role)
        if config.get("POOLER") == "pgbouncer" and role == "app":
            info = _local_pgbouncer(cluster)
        register_secret(info.password)
        resolved.update(HOST=info.host, PORT=info.port, USER=info.user, PASSWORD=info.password)
        if config.get("NAME") == "":
            resolved["NAME"] = info.dbname
        options.setdefault("sslrootcert", info.sslrootcert)
    elif "sslrootcert" not in options:
        cluster = at_local_cluster(config.get("HOST"), config.get("PORT"))
        if cluster is not None:
            options["sslrootcert"] = str(cluster.ca_file)
    resolved["OPTIONS"] = options
    return resolved


def _local_pgbouncer(cluster: LocalCluster) -> ConnInfo:
    from dbops.localdb import LocalDBError

    bouncer = cluster.pgbouncer
    if not bouncer.exists():
        raise ImproperlyConfigured(
            "DB_POOLER=pgbouncer with the local database, whose PgBouncer has not been set up: "
            "run `python manage.py devdb start --with-pgbouncer`."
        )
    try:
        return bouncer.conninfo("app")
    except LocalDBError as err:
        raise ImproperlyConfigured(str(err)) from None


def settings_for(alias: str) -> dict[str, Any]:
    """Return the settings Django's connection `alias` uses, with the local cluster resolved."""
    from django.db import connections

    from dbops.connections.errors import not_configured

    try:
        config = connections[alias].settings_dict
    except Exception as err:  # ConnectionDoesNotExist: the replica is not configured
        raise ImproperlyConfigured(
            f"No {alias!r} database is configured: set "
            f"{'REPLICA_DATABASE_URL' if alias == 'replica' else 'DATABASE_URL'}."
        ) from err
    if not configured(config):
        raise not_configured()
    return resolve(config)


def database_name(alias: str) -> str:
    """Return the name of the database `alias` connects to, for reports; the alias if unknown."""
    from django.db.utils import OperationalError

    try:
        return str(settings_for(alias).get("NAME") or alias)
    except (ImproperlyConfigured, OperationalError):  # not configured, no local cluster yet
        return alias


def conninfo(role: str = "owner", *, database: str | None = None) -> ConnInfo:
    """Return the connection parameters of `role`, with a secret's login read and registered.

    "superuser" is the local cluster's (tests, `devdb psql`); elsewhere there is none.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")
    if role == "superuser":
        cluster = local_cluster()
        if cluster is None:
            raise ImproperlyConfigured(
                "The superuser role exists on the local cluster only: start it with "
                "`python manage.py devdb start`."
            )
        info = cluster.conninfo("superuser")
    else:
        info = from_settings(settings_for(ROLE_ALIASES[role]))
    return info.on(database) if database else info


def from_settings(config: Mapping[str, Any]) -> ConnInfo:
    """Turn a (resolved) DATABASES entry into ConnInfo, reading its secret if it has one."""
    from django.conf import settings

    options = config.get("OPTIONS", {})
    user, password = str(config.get("USER") or ""), str(config.get("PASSWORD") or "")
    host, port, dbname = config.get("HOST"), config.get("PORT"), config.get("NAME")
    secret = config.get("SECRET")
    if secret:
        from dbops.connections.secrets import SecretRef

        ref = SecretRef(secret["ID"], secret.get("REGION") or "", secret.get("SETTING") or "")
        found = ref.get()
        user, password = found.username, found.password
        host, port, dbname = host or found.host, port or found.port, dbname or found.dbname
    register_secret(password)
    return ConnInfo(
        host=str(host or "localhost"),
        port=int(port or 5432),
        user=user,
        password=password,
        dbname=str(dbname or ""),
        sslmode=str(options.get("sslmode") or getattr(settings, "DB_SSLMODE", "verify-full")),
        sslrootcert=str(options.get("sslrootcert") or ""),
        application_name=str(options.get("application_name") or APPLICATION_NAME),
        connect_timeout=int(options.get("connect_timeout") or CONNECT_TIMEOUT),
        options=str(options.get("options") or ""),
        setting=str(config.get(SETTING_KEY) or ""),
    )


def connect(
    role: str = "owner",
    *,
    database: str | None = None,
    application_name: str | None = None,
    autocommit: bool = True,
) -> psycopg.Connection[Any]:
    """Open one psycopg connection as `role`; a failure is DatabaseUnavailable's one line."""
    info = conninfo(role, database=database)
    if application_name:
        info = info.named(application_name)
    return open_connection(info, autocommit=autocommit)


def open_connection(info: ConnInfo, *, autocommit: bool = True) -> psycopg.Connection[Any]:
    """Open one psycopg connection with `info`; a failure is DatabaseUnavailable's one line."""
    import psycopg

    from dbops.connections.errors import unavailable

    try:
        return psycopg.connect(**info, autocommit=autocommit)
    except psycopg.OperationalError as err:
        raise unavailable(info.setting, {SETTING_KEY: info.setting}, err, info) from err


def from_url(url: str, variable: str, *, sslmode: str, sslrootcert: str = "") -> ConnInfo:
    """Return ConnInfo for a URL given on a command line (`dbroles --url`)."""
    import psycopg

    try:
        params = psycopg.conninfo.conninfo_to_dict(url)
        register_secret(str(params.get("password") or ""))
        host, port = str(params.get("host") or "localhost"), int(params.get("port") or 5432)
    except (psycopg.Error, ValueError):
        raise ImproperlyConfigured(
            f"{variable} is not a valid PostgreSQL URL: use postgres://USER:PASSWORD@HOST:PORT/NAME."
        ) from None
    user = str(params.get("user") or os.environ.get("USER", ""))
    if not params.get("sslrootcert") and not sslrootcert:
        cluster = at_local_cluster(host, port)
        sslrootcert = str(cluster.ca_file) if cluster is not None else ""
    return ConnInfo(
        host=host,
        port=port,
        user=user,
        password=str(params.get("password") or ""),
        dbname=str(params.get("dbname") or user),  # libpq's default
        sslmode=str(params.get("sslmode") or sslmode),
        sslrootcert=str(params.get("sslrootcert") or sslrootcert),
        options=str(params.get("options") or ""),
        setting=variable,
    )
