"""Settings, read from the environment and an optional `.env` file (django-environ).

Every refusal names the variable and the fix; no message ever contains a URL, so no
password can leak through one.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from dbops.web.logformat import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()
ENV_FILE = Path(os.environ.get("ENV_FILE", BASE_DIR / ".env"))
if ENV_FILE.is_file():
    # Real environment variables win over the file, as django-environ does by default.
    environ.Env.read_env(str(ENV_FILE))

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in TRUE_WORDS:
        return True
    if raw.strip().lower() in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false.")


def env_int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def env_str(name: str, default: str = "") -> str:
    # Secrets may come from a file (Docker/Kubernetes secrets): NAME_FILE=/run/secrets/x.
    path = os.environ.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except (OSError, UnicodeDecodeError) as err:
            reason = err.strerror if isinstance(err, OSError) else "it is not UTF-8 text"
            raise ImproperlyConfigured(
                f"{name}_FILE={path!r} cannot be read ({reason}): point it at the file "
                f"that holds {name}, or unset it and set {name}."
            ) from None
    return os.environ.get(name, default)


ENVIRONMENTS = ("development", "test", "production")
DJANGO_ENV = os.environ.get("DJANGO_ENV", "development")
if DJANGO_ENV not in ENVIRONMENTS:
    raise ImproperlyConfigured(
        f"DJANGO_ENV={DJANGO_ENV!r} is not one of {', '.join(ENVIRONMENTS)}: set DJANGO_ENV "
        "to one of them."
    )
PRODUCTION = DJANGO_ENV == "production"

DEBUG = env_bool("DEBUG", default=DJANGO_ENV == "development")
if PRODUCTION and DEBUG:
    raise ImproperlyConfigured(
        "DEBUG is on in production: set DEBUG=false (it shows stack traces and settings "
        "to anyone who triggers an error)."
    )

MAKE_SECRET_KEY = "python -c 'import secrets; print(secrets.token_urlsafe(50))'"


def secret_key_weakness(key: str) -> str:
    """Say why a SECRET_KEY is too weak for production ("" when it is not); never echo it."""
    # The rules of Django's check security.W009, which `check --deploy` only warns about.
    from django.core.checks.security.base import (
        SECRET_KEY_INSECURE_PREFIX,
        SECRET_KEY_MIN_LENGTH,
        SECRET_KEY_MIN_UNIQUE_CHARACTERS,
    )

    if not key:
        return "is not set in production"
    if key.startswith(SECRET_KEY_INSECURE_PREFIX):
        return f"starts with {SECRET_KEY_INSECURE_PREFIX!r} (a development key)"
    if len(key) < SECRET_KEY_MIN_LENGTH:
        return f"has {len(key)} characters; production needs {SECRET_KEY_MIN_LENGTH} or more"
    if len(set(key)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        return (
            f"has {len(set(key))} different characters; production needs "
            f"{SECRET_KEY_MIN_UNIQUE_CHARACTERS} or more"
        )
    return ""


SECRET_KEY = env_str("SECRET_KEY")
if PRODUCTION and (weakness := secret_key_weakness(SECRET_KEY)):
    raise ImproperlyConfigured(
        f"SECRET_KEY {weakness}: set SECRET_KEY to a long random value, e.g. the output "
        f"of `{MAKE_SECRET_KEY}`."
    )
if not SECRET_KEY:
    SECRET_KEY = "django-insecure-development-only-key-not-for-production-use-0123456789"

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=[] if PRODUCTION else ["127.0.0.1", "localhost"])
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS is empty in production: set ALLOWED_HOSTS to the site's host names, "
        "comma-separated (e.g. admin.choregarden.app)."
    )
if PRODUCTION and any("*" in host for host in ALLOWED_HOSTS):
    # A wildcard lets any Host header through: password-reset links and absolute URLs
    # would then point wherever a request says.
    raise ImproperlyConfigured(
        "ALLOWED_HOSTS contains '*' in production: list the site's host names instead, "
        "comma-separated (e.g. admin.choregarden.app; .choregarden.app allows subdomains)."
    )
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# --- Web security: production is HTTPS only (`manage.py check --deploy` is clean) -------
# Behind a load balancer that ends TLS (ALB), Django sees plain HTTP: trust the proxy's
# X-Forwarded-Proto, and its X-Forwarded-For for the client's address (login throttling).
# Only set BEHIND_TLS_PROXY when a proxy always overwrites those headers.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", default=False)
if BEHIND_TLS_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", default=PRODUCTION)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000 if PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=PRODUCTION)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", default=PRODUCTION)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", default=PRODUCTION)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", default=PRODUCTION)
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # the admin sends the token in its forms, never from JavaScript
SESSION_COOKIE_SAMESITE = "Lax"
# Staff sessions end after a working day, counted from sign-in (not renewed per request).
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 8 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = env_bool("SESSION_EXPIRE_AT_BROWSER_CLOSE", default=True)
X_FRAME_OPTIONS = "DENY"
# Content-Security-Policy (django-csp): the admin loads scripts, styles, images and fonts
# from its own origin only, runs no inline script or style, posts forms only to itself
# and is never framed; a script injected into a page would not run.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "base-uri": ["'none'"],
    }
}

# Admin sign-in throttling (django-axes, dbops.signin.throttling): after AXES_FAILURE_LIMIT
# failed attempts for one username from one address, that pair is refused for
# AXES_COOLOFF_MINUTES; after SIGNIN_ADDRESS_FAILURE_LIMIT failures from one address,
# whatever the names, the address is. A name alone is never locked: whoever knows an
# admin's name cannot lock the admin out from elsewhere.
AXES_FAILURE_LIMIT = env_int("AXES_FAILURE_LIMIT", 5, minimum=1)
SIGNIN_ADDRESS_FAILURE_LIMIT = env_int("SIGNIN_ADDRESS_FAILURE_LIMIT", 20, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_HANDLER = "dbops.signin.throttling.PairAndAddressHandler"
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False  # no banner on every command; lockouts are still logged as warnings
AXES_COOLOFF_MESSAGE = (
    f"Too many failed sign-in attempts: sign-in is locked for "
    f"{int(AXES_COOLOFF_TIME.total_seconds() // 60)} minutes. Try again later, or ask an "
    "administrator to unlock it (Access attempts in the admin)."
)
# The client's address: REMOTE_ADDR, or behind TRUSTED_PROXY_COUNT proxies that each
# append to X-Forwarded-For, the entry the farthest of them wrote (dbops.signin.throttling).
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 1 if BEHIND_TLS_PROXY else 0)
if BEHIND_TLS_PROXY and TRUSTED_PROXY_COUNT == 0:
    raise ImproperlyConfigured(
        "TRUSTED_PROXY_COUNT=0 with BEHIND_TLS_PROXY=true: every client would seem to come "
        "from the proxy's address; set TRUSTED_PROXY_COUNT to the number of proxies in front "
        "of the site (1 for a load balancer alone)."
    )
AXES_CLIENT_IP_CALLABLE = "dbops.signin.throttling.client_address"
# Staff sign in to the admin with a password and a TOTP token (`manage.py addtotp USER`
# enrolls a device); a stolen or guessed password alone is not enough.
ADMIN_REQUIRE_2FA = env_bool("ADMIN_REQUIRE_2FA", default=PRODUCTION)
OTP_TOTP_ISSUER = "Chore Garden admin"
# The device admin never shows a device's key or QR code once made (addtotp prints it once).
OTP_ADMIN_HIDE_SENSITIVE_DATA = True

# The admin's address: moving it off the well-known admin/ keeps scanners that try
# passwords there from finding the sign-in page at all (the throttle still applies).
ADMIN_URL_SEGMENTS = re.compile(r"(?:[A-Za-z0-9._~-]*[A-Za-z0-9][A-Za-z0-9._~-]*/)+")
ADMIN_URL = env_str("ADMIN_URL", "admin/")
if not ADMIN_URL_SEGMENTS.fullmatch(ADMIN_URL):
    # Segments of URL-safe characters only: the value is a route, used unescaped.
    raise ImproperlyConfigured(
        f"ADMIN_URL={ADMIN_URL!r} is not a path: use one or more segments of letters, digits "
        "and . _ ~ -, each ending with /, without a leading / (e.g. staff-7f3c/)."
    )

# --- Database ----------------------------------------------------------------------------
# The environment's variables become DATABASES in dbops.connections.config, the one owner of
# connection parameters (D8): `default` is the application role, `owner` the owner role
# (migrations, backups, partitions; no timeouts, no pool), `replica` the read replica.
# With no DATABASE_URL outside production the local cluster (D6) is the server, read when
# a connection is made.
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
DB_SSLMODE = os.environ.get("DB_SSLMODE", "verify-full")
if DB_SSLMODE not in SSL_MODES:
    raise ImproperlyConfigured(
        f"DB_SSLMODE={DB_SSLMODE!r} is not a libpq sslmode: use one of {', '.join(SSL_MODES)}."
    )
DB_SSLROOTCERT = os.environ.get("DB_SSLROOTCERT", "")
# Unset: servers pool, and `manage.py`'s one-off commands connect directly
# (dbops.management.utility); true or false decides for both.
DB_POOL: bool | None = env_bool("DB_POOL", default=True) if os.environ.get("DB_POOL") else None
DB_POOL_MIN_SIZE = env_int("DB_POOL_MIN_SIZE", 10 if PRODUCTION else 5, minimum=0)
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 20 if PRODUCTION else 10, minimum=1)
DB_POOL_TIMEOUT = env_int("DB_POOL_TIMEOUT", 10, minimum=1)
if DB_POOL_MIN_SIZE > DB_POOL_MAX_SIZE:
    raise ImproperlyConfigured(
        f"DB_POOL_MIN_SIZE={DB_POOL_MIN_SIZE} is larger than DB_POOL_MAX_SIZE="
        f"{DB_POOL_MAX_SIZE}: lower the first or raise the second."
    )

# Bounded waits (dbops.connections.waits): every connection of the application role gives up on a
# statement, a lock or a transaction left idle after these; 0 turns one off.
_TIMEOUT_DEFAULTS = {
    "statement_timeout": "30s",
    "lock_timeout": "5s",
    "idle_in_transaction_session_timeout": "60s",
}


def env_duration_ms(name: str, default: str) -> int:
    from dbops.connections.waits import DurationError, duration_ms

    try:
        return duration_ms(name, os.environ.get(name, "").strip() or default)
    except DurationError as err:
        raise ImproperlyConfigured(str(err)) from None


def _timeouts() -> dict[str, int]:
    from dbops.connections.waits import TIMEOUTS

    return {
        parameter: env_duration_ms(name, _TIMEOUT_DEFAULTS[parameter])
        for parameter, name in TIMEOUTS.items()
    }


DB_TIMEOUTS = _timeouts()

# DATABASE_URL is a transaction-mode pooler (docs/scaling.md): PgBouncer, or RDS Proxy.
# Django's own pool is then off, and so are server-side cursors and prepared statements.
DB_POOLER = os.environ.get("DB_POOLER", "").strip().lower()
if DB_POOLER not in ("", "pgbouncer", "rds-proxy"):
    raise ImproperlyConfigured(
        f"DB_POOLER={DB_POOLER!r} is not a pooler this project knows: use pgbouncer or "
        "rds-proxy (transaction pooling), or leave it unset for a direct connection."
    )
if DB_POOLER and DB_POOL:
    raise ImproperlyConfigured(
        f"DB_POOL=true and DB_POOLER={DB_POOLER}: the pooler pools the connections; unset "
        "DB_POOL (or set it to false)."
    )
# Seconds a process keeps its connection to the pooler (0: one per request).
DB_CONN_MAX_AGE = env_int("DB_CONN_MAX_AGE", 60, minimum=0)

DATABASE_URL = env_str("DATABASE_URL")
MIGRATION_DATABASE_URL = env_str("MIGRATION_DATABASE_URL")
# Credentials from AWS Secrets Manager (docs/secrets.md): the RDS secret JSON of each role.
DB_SECRET_ID = os.environ.get("DB_SECRET_ID", "")
MIGRATION_DB_SECRET_ID = os.environ.get("MIGRATION_DB_SECRET_ID", "")
AWS_REGION = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "")
# `dbalarms sync` (docs/monitoring-playbook.md): the SNS topic its alarms notify, the RDS
# instances whose metrics they watch, the prefix of their names (checked by the command,
# not here: no other command needs them); thresholds in DB_ALARM_THRESHOLDS (a dict).
ALARM_SNS_TOPIC_ARN = env_str("ALARM_SNS_TOPIC_ARN")
RDS_INSTANCE_ID = env_str("RDS_INSTANCE_ID")
RDS_REPLICA_INSTANCE_ID = env_str("RDS_REPLICA_INSTANCE_ID")
# `migrate --rehearse --from-snapshot`: seconds to wait for the snapshot's clone instance.
REHEARSAL_CLONE_TIMEOUT = env_int("REHEARSAL_CLONE_TIMEOUT", 7200, minimum=1)
DB_ALARM_PREFIX = env_str("DB_ALARM_PREFIX", "choregarden-")
# cognitosync refuses to deactivate more than this share of the active profiles in one run.
COGNITO_DEACTIVATION_LIMIT_PERCENT = env_int("COGNITO_DEACTIVATION_LIMIT_PERCENT", 10)
REPLICA_DATABASE_URL = env_str("REPLICA_DATABASE_URL")
# The address parts a secret may lack (RDS-managed master secrets have no host or port).
DB_PORT = os.environ.get("DB_PORT", "").strip()
if DB_PORT and not (DB_PORT.isdigit() and 1 <= int(DB_PORT) <= 65535):
    raise ImproperlyConfigured(
        f"DB_PORT={DB_PORT!r} is not a port: use a whole number from 1 to 65535, e.g. 5432."
    )


def _databases() -> dict[str, dict[str, Any]]:
    from dbops.connections.config import DatabaseEnvironment, databases

    pool = {
        "min_size": DB_POOL_MIN_SIZE,
        "max_size": DB_POOL_MAX_SIZE,
        "timeout": DB_POOL_TIMEOUT,
        # psycopg_pool retries a failed connect with a doubling delay until this many
        # seconds, then stops and opens connections again on demand. Its default (5
        # min) let the delay reach 16 s, so the site stayed down up to that long after
        # the database was back; with 2 s a request is at most a second behind it.
        "reconnect_timeout": 2,
    }
    return databases(
        DatabaseEnvironment(
            production=PRODUCTION,
            database_url=DATABASE_URL,
            migration_database_url=MIGRATION_DATABASE_URL,
            replica_database_url=REPLICA_DATABASE_URL,
            secret_id=DB_SECRET_ID,
            migration_secret_id=MIGRATION_DB_SECRET_ID,
            region=AWS_REGION,
            name=os.environ.get("DB_NAME", ""),
            host=os.environ.get("DB_HOST", ""),
            port=DB_PORT,
            sslmode=DB_SSLMODE,
            sslrootcert=DB_SSLROOTCERT,
            pool=None if DB_POOL is False or DB_POOLER else pool,
            timeouts=DB_TIMEOUTS,
            pooler=DB_POOLER,
            conn_max_age=DB_CONN_MAX_AGE,
        )
    )


DATABASES = _databases()
REPORTING_MODELS = env.list("REPORTING_MODELS", default=[])
# The replica serves reporting reads while it is at most this far behind the primary
# (else the primary does, with a log line); checked at most every interval per process.
DB_REPLICA_MAX_LAG = env_duration_ms("DB_REPLICA_MAX_LAG", "10s") / 1000
DB_REPLICA_CHECK_INTERVAL = env_duration_ms("DB_REPLICA_CHECK_INTERVAL", "1s") / 1000
# After a client writes, its reporting reads stay on the primary this long (0: off).
DB_READ_YOUR_WRITES = env_duration_ms("DB_READ_YOUR_WRITES", "5s") / 1000
DATABASE_ROUTERS = ["dbops.connections.routers.ReplicaRouter"]
# `analytics refresh` re-reads the rows recorded this long before its start (longer than
# any write transaction and DB_REPLICA_MAX_LAG): chores/analytics/refresh.py.
ANALYTICS_REFRESH_MARGIN = env_duration_ms("ANALYTICS_REFRESH_MARGIN", "300s") / 1000

SQL_MIGRATIONS = {
    "LOCATION": BASE_DIR / "migrations_sql",
    # Undo files live apart: Flyway Community (flyway.toml) cannot parse a U file name.
    "UNDO_LOCATION": BASE_DIR / "migrations_undo",
    "SCHEMA": "public",
    "TABLE": "flyway_schema_history",
    "PLACEHOLDERS": {"app_role": "choregarden"},
    # Migrations run as the owner role (D4), on its own connection.
    "DATABASE": "owner",
    # Migrate refuses a connection that something in between answers for (PgBouncer):
    # true accepts one that keeps a session per client (an SSH tunnel, a port forward).
    "ALLOW_PROXY": env_bool("MIGRATION_ALLOW_PROXY", default=False),
    # Migrate refuses a rewrite, a long lock or a blocking index build on a table from
    # this many rows or this size (docs/migrations.md, "Large tables").
    "LARGE_TABLE_ROWS": 100_000,
    "LARGE_TABLE_SIZE": "64MB",
    # `migrate --rehearse` restores a backup through this (docs/migrations.md).
    "REHEARSAL_SOURCE": "dbops.backups.rehearsal.scratch_database",
}

# --- Application ---------------------------------------------------------------------
INSTALLED_APPS = [
    # The migration engine first: its `migrate` replaces Django's.
    "sqlmigrations",
    "dbops",
    "accounts",
    "chores",
    "choregarden.apps.AdminConfig",  # django.contrib.admin with the project's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "csp",
    # A second factor for staff in the admin (dbops.signin.twofactor, ADMIN_REQUIRE_2FA).
    "django_otp",
    "django_otp.plugins.otp_totp",
    # OpClass in index expressions (the users trigram indexes) renders right only with it.
    "django.contrib.postgres",
]

MIDDLEWARE = [
    # First: the request id covers every later record, and every request gets its line.
    "dbops.web.requestlog.RequestLogMiddleware",
    # It sees every response, the 404 of an address that matches no view included.
    "dbops.web.error_reports.MaskDebugErrorPagesMiddleware",
    # Before the HTTPS redirect and the host check: the balancer's checks are plain HTTP
    # to the target's address (dbops.health.healthz).
    "dbops.health.healthz.HealthCheckMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS and JavaScript) from STATIC_ROOT, before sessions.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",  # Content-Security-Policy (CONTENT_SECURITY_POLICY below)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(), after auth
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Read-your-writes, and a read-only request the replica failed runs again on the
    # primary: around the 503 of the database's trouble below, which it replaces.
    "dbops.web.replicarouting.ReplicaRoutingMiddleware",
    # The database's trouble (timeouts, no connection, shutdown) answers 503, not 500.
    "dbops.web.dbtrouble.DatabaseTroubleMiddleware",
    # Last, as django-axes requires: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses locked-out sign-ins
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "choregarden.urls"
WSGI_APPLICATION = "choregarden.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    # Staff passwords open the admin: 12 characters at least (Django's default is 8).
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 12},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
# The admin speaks English only (no LocaleMiddleware, LANGUAGE_CODE en-us): translation
# lookups were a sixth of a changelist's server time for no change in what it shows.
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` writes here at build time; WhiteNoise serves it.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "var" / "static")
# Hashed, compressed file names from collectstatic's manifest (cached forever by browsers).
# Pages then need the manifest: on in production, off elsewhere unless STATIC_MANIFEST=true.
STATIC_MANIFEST = env_bool("STATIC_MANIFEST", default=PRODUCTION)
MEDIA_URL = "media/"
MEDIA_ROOT = BASE_DIR / "var" / "media"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Storage and backups (docs/backups.md) ---------------------------------------------
# Backups go to S3 when BACKUP_BUCKET is set, else to a folder (var/backups by default).
BACKUP_RETENTION_DAYS = env_int("BACKUP_RETENTION_DAYS", 7, minimum=1)
# `backup prune` keeps this many newest good backups, however old.
BACKUP_KEEP_MIN = env_int("BACKUP_KEEP_MIN", 2, minimum=1)
BACKUP_ENV = os.environ.get("BACKUP_ENV", DJANGO_ENV)
BACKUP_BUCKET = os.environ.get("BACKUP_BUCKET", "")
BACKUP_KMS_KEY_ID = os.environ.get("BACKUP_KMS_KEY_ID", "")
BACKUP_DIR = Path(os.environ.get("BACKUP_DIR", BASE_DIR / "var" / "backups"))
# `backup create` signs each manifest (HMAC-SHA256); restore and verify check it. Only the
# backup job needs the key: give it to that role, not to the web application.
BACKUP_SIGNING_KEY = env_str(
    "BACKUP_SIGNING_KEY",
    "" if PRODUCTION else "development-only-backup-signing-key-not-for-production",
)
BACKUP_SIGNING_KEY_SECRET_ID = os.environ.get("BACKUP_SIGNING_KEY_SECRET_ID", "")
if BACKUP_BUCKET:
    _backup_storage: dict[str, Any] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BACKUP_BUCKET,
            "region_name": os.environ.get("BACKUP_REGION") or os.environ.get("AWS_REGION"),
            "location": os.environ.get("BACKUP_PREFIX", "backups").strip("/"),
            "default_acl": None,
            "file_overwrite": True,
            # With a KMS key (the bucket's default, docs/backups.md) every upload names it;
            # sending AES256 would override the bucket's KMS default.
            "object_parameters": (
                {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": BACKUP_KMS_KEY_ID}
                if BACKUP_KMS_KEY_ID
                else {"ServerSideEncryption": "AES256"}
            ),
        },
    }
else:
    _backup_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # Dumps and archives hold every user's data: only the owner may read them.
        "OPTIONS": {
            "location": str(BACKUP_DIR),
            "directory_permissions_mode": 0o700,
            "file_permissions_mode": 0o600,
        },
    }
# A second copy of every backup (docs/backups.md, "Copies in a second region"): a bucket in
# another region (both settings, or neither), or a second folder for development and tests.
BACKUP_REPLICA_BUCKET = os.environ.get("BACKUP_REPLICA_BUCKET", "")
BACKUP_REPLICA_REGION = os.environ.get("BACKUP_REPLICA_REGION", "")
BACKUP_REPLICA_DIR = os.environ.get("BACKUP_REPLICA_DIR", "")
# KMS keys are regional: the primary's BACKUP_KMS_KEY_ID cannot encrypt in the replica's region.
BACKUP_REPLICA_KMS_KEY_ID = os.environ.get("BACKUP_REPLICA_KMS_KEY_ID", "")
# The region alone is allowed: it is also where RDS replicates its automated backups
# (`backup rds`, same meaning); a bucket without its region is refused.
if BACKUP_REPLICA_BUCKET and not BACKUP_REPLICA_REGION:
    raise ImproperlyConfigured(
        "BACKUP_REPLICA_REGION is not set: BACKUP_REPLICA_BUCKET needs the region of that "
        "second bucket; set both, or neither (docs/backups.md)."
    )
if BACKUP_REPLICA_BUCKET and BACKUP_REPLICA_DIR:
    raise ImproperlyConfigured(
        "BACKUP_REPLICA_BUCKET and BACKUP_REPLICA_DIR are both set: the replica is a bucket "
        "or a folder; unset one of them."
    )
if BACKUP_REPLICA_BUCKET and BACKUP_REPLICA_BUCKET == BACKUP_BUCKET:
    raise ImproperlyConfigured(
        "BACKUP_REPLICA_BUCKET is BACKUP_BUCKET: a copy in the same bucket is no second "
        "copy; name a bucket in another region."
    )
if (
    BACKUP_REPLICA_DIR
    and not BACKUP_BUCKET
    and Path(BACKUP_REPLICA_DIR).resolve() == BACKUP_DIR.resolve()
):
    raise ImproperlyConfigured(
        "BACKUP_REPLICA_DIR is BACKUP_DIR: a copy in the same folder is no second copy; "
        "name another folder (another disk)."
    )
if BACKUP_REPLICA_BUCKET:
    _backup_replica: dict[str, Any] | None = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": BACKUP_REPLICA_BUCKET,
            "region_name": BACKUP_REPLICA_REGION,
            "location": os.environ.get("BACKUP_PREFIX", "backups").strip("/"),
            "default_acl": None,
            "file_overwrite": True,
            "object_parameters": (
                {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": BACKUP_REPLICA_KMS_KEY_ID}
                if BACKUP_REPLICA_KMS_KEY_ID
                else {"ServerSideEncryption": "AES256"}
            ),
        },
    }
elif BACKUP_REPLICA_DIR:
    _backup_replica = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "location": str(Path(BACKUP_REPLICA_DIR)),
            "directory_permissions_mode": 0o700,
            "file_permissions_mode": 0o600,
        },
    }
else:
    _backup_replica = None
# `backup restore` runs pg_restore -j N into a new database: 0 chooses N from the CPU count.
BACKUP_RESTORE_JOBS = env_int("BACKUP_RESTORE_JOBS", 0, minimum=0)
# --- Partitions (docs/operations.md, "Partitions of completions") -----------------------
# The chores app's monthly-partitioned tables and their partition keys (timestamptz):
# `manage.py partitions --table` offers these, the first by default.
PARTITIONED_TABLES = {"completions": "completed_at"}

# --- Maintenance windows (docs/operations.md, "Maintenance windows") --------------------
# `manage.py dbmaintenance --execute` runs only in this window unless --now ("" is none:
# --window or --now is then needed), and starts no step after the budget.


def _maintenance_window() -> Any:
    from dbops.maintenance.window import WindowError, parse_window

    raw = os.environ.get("MAINTENANCE_WINDOW", "").strip()
    try:
        return parse_window(raw) if raw else None
    except WindowError as err:
        raise ImproperlyConfigured(f"MAINTENANCE_WINDOW: {err}") from None


def _maintenance_budget() -> int:
    from dbops.maintenance.window import WindowError, parse_budget

    try:
        return parse_budget(os.environ.get("MAINTENANCE_BUDGET", "").strip() or "30m")
    except WindowError as err:
        raise ImproperlyConfigured(f"MAINTENANCE_BUDGET: {err}") from None


MAINTENANCE_WINDOW = _maintenance_window()
MAINTENANCE_BUDGET_SECONDS = _maintenance_budget()
# How long a step waits for a table lock before it fails (the next steps still run).
MAINTENANCE_LOCK_TIMEOUT_MS = env_duration_ms("MAINTENANCE_LOCK_TIMEOUT", "30s")
# REINDEX an index of at least this many bytes once this share of it is bloat.
MAINTENANCE_INDEX_BLOAT_RATIO = 0.3
MAINTENANCE_INDEX_MIN_BYTES = env_int("MAINTENANCE_INDEX_MIN_BYTES", 1024 * 1024, minimum=0)
# The rates the estimates assume (MB of table or index per second), and the partitions ahead.
MAINTENANCE_VACUUM_MB_PER_SECOND = 50
MAINTENANCE_REINDEX_MB_PER_SECOND = 20
MAINTENANCE_ANALYTICS_SECONDS_PER_DAY = 2
MAINTENANCE_PARTITION_MONTHS_AHEAD = 6

# --- User uploads: avatars (docs/security.md, "User uploads") ---------------------------
# Only real PNG, JPEG, WebP and GIF images, within these limits (accounts/avatars.py).
AVATAR_MAX_BYTES = env_int("AVATAR_MAX_BYTES", 2 * 1024 * 1024, minimum=1)
AVATAR_MAX_PIXELS = env_int("AVATAR_MAX_PIXELS", 4096 * 4096, minimum=1)
# Uploads stored on this machine are readable by the owner (and its group) only.
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
# Production keeps avatars in their own S3 bucket, served from the bucket's (or a CDN's)
# domain, never the admin's origin: a stored file can then never run script as the admin.
AVATAR_BUCKET = os.environ.get("AVATAR_BUCKET", "")
AVATAR_DOMAIN = os.environ.get("AVATAR_DOMAIN", "").strip().lower()
if AVATAR_DOMAIN and AVATAR_DOMAIN.split(":")[0] in {h.lower() for h in ALLOWED_HOSTS}:
    raise ImproperlyConfigured(
        f"AVATAR_DOMAIN={AVATAR_DOMAIN!r} is one of ALLOWED_HOSTS: user uploads must come "
        "from another domain than the admin's (e.g. a CDN host of the avatar bucket)."
    )
if AVATAR_BUCKET:
    _avatar_storage: dict[str, Any] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AVATAR_BUCKET,
            "region_name": os.environ.get("AVATAR_REGION") or os.environ.get("AWS_REGION"),
            "default_acl": None,  # private: links are signed, short-lived URLs
            "file_overwrite": False,
            "custom_domain": AVATAR_DOMAIN or None,
            # A browser that opens an avatar directly downloads it instead of rendering it.
            "object_parameters": {
                "ContentDisposition": "attachment",
                "ServerSideEncryption": "AES256",
            },
        },
    }
else:
    # Not served by this project at all (no /media/ route): only stored, owner-readable.
    _avatar_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {
            "file_permissions_mode": FILE_UPLOAD_PERMISSIONS,
            "directory_permissions_mode": FILE_UPLOAD_DIRECTORY_PERMISSIONS,
        },
    }

STORAGES = {
    "default": _avatar_storage,
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
    "backups": _backup_storage,
    # STORAGES["backups_replica"] only when a replica is configured (dbops.backups.replica).
    **({"backups_replica": _backup_replica} if _backup_replica else {}),
}

# --- Secrets stay out of logs and error pages (docs/security.md) ------------------------
# Django's error page and error e-mails: settings, request data, local variables and
# messages masked by name, by shape and by value, with DEBUG on too.
DEFAULT_EXCEPTION_REPORTER = "dbops.web.error_reports.SecretsExceptionReporter"
DEFAULT_EXCEPTION_REPORTER_FILTER = "dbops.web.error_reports.SecretsExceptionReporterFilter"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO").strip().upper()
if LOG_LEVEL not in LOG_LEVELS:
    raise ImproperlyConfigured(
        f"LOG_LEVEL={os.environ['LOG_LEVEL']!r} is not a log level: use one of "
        f"{', '.join(LOG_LEVELS)}."
    )
# The AWS SDK's DEBUG records hold whole responses (a GetSecretValue body) before the
# secret in them can be registered for masking: it logs at INFO at most.
_AWS_SDK_LOG_LEVEL = "INFO" if LOG_LEVEL == "DEBUG" else LOG_LEVEL
# One line per event with UTC time, level, logger, process, thread and request id; JSON
# for CloudWatch Logs with LOG_FORMAT=json. Every handler masks secrets (dbops.web.logformat).
LOG_FORMATS = ("text", "json")
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text").strip().lower()
if LOG_FORMAT not in LOG_FORMATS:
    raise ImproperlyConfigured(
        f"LOG_FORMAT={os.environ['LOG_FORMAT']!r} is not a log format: use text or json."
    )
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL, _AWS_SDK_LOG_LEVEL)
# /healthz and /readyz requests allowed per second and process, each (dbops.health.healthz).
HEALTH_CHECKS_PER_SECOND = env_int("HEALTH_CHECKS_PER_SECOND", 10, minimum=1)
# `dbhealth --record` keeps this many days of snapshots (35: the 30-day chart stays full)
# and the top statements by total time of each (dbops.health.history).
DB_HEALTH_HISTORY_DAYS = env_int("DB_HEALTH_HISTORY_DAYS", 35, minimum=1)
DB_HEALTH_HISTORY_STATEMENTS = env_int("DB_HEALTH_HISTORY_STATEMENTS", 20, minimum=0)
