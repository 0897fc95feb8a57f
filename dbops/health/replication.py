"""Replication: the standbys streaming from this server, its replication slots, the replica.

Three checks, in the style of PgHero and check_postgres:

- `replication`: each standby in pg_stat_replication, its state and how far its replay is
  behind, in bytes of WAL and in seconds (replay_lag);
- `replication_slots`: the WAL each slot keeps on this server's disk. A slot keeps every
  segment its consumer has not confirmed: when the standby (or subscriber) is gone, the
  slot is inactive and the WAL piles up until the disk is full and the primary stops;
- `replica`: the application's read replica (the `replica` alias, REPLICA_DATABASE_URL),
  seen from its own side: a standby, receiving WAL, and how old what it serves is.

A row per standby or slot carries its own status; the check's status is the worst row's,
so that each check stays one result (one line in `dbhealth`, one metric and one
HealthStatus per check in CloudWatch) however many standbys there are. Without standbys,
slots or a replica, each check is OK and says so: a development database stays green.
"""

from __future__ import annotations

from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections
from django.db.utils import load_backend

from dbops.connections.config import SETTING_KEY
from dbops.connections.errors import DatabaseUnavailable, one_line
from dbops.connections.replicas import LAG_QUERY, REPLICA, not_a_standby
from dbops.health.base import (
    CRITICAL,
    OK,
    SEVERITY,
    WARNING,
    CheckResult,
    fetch_rows,
    fmt,
    pretty,
    status_above,
    thresholds,
)
from sqlmigrations.redact import redact

# The WAL position standbys and slots are measured against. On a primary, what it has
# written; on a standby (cascading replication), pg_current_wal_lsn() raises, and what it
# has received (or, restored from the archive only, replayed) is what it can pass on.
CURRENT_LSN = (
    "CASE WHEN pg_is_in_recovery()"
    " THEN coalesce(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())"
    " ELSE pg_current_wal_lsn() END"
)
# The replica check opens a connection of its own: an unreachable replica must cost the
# admin page or the cron job seconds, not the alias's CONNECT_TIMEOUT or a pool's wait.
REPLICA_CONNECT_TIMEOUT_SECONDS = 5
BACKUP_STATE = "backup"  # a pg_basebackup in progress: a walsender, not a standby


def _worst(*statuses: str) -> str:
    return max(statuses, key=lambda s: SEVERITY[s], default=OK)


def _limits(limits: dict[str, float], unit: str) -> dict[str, float]:
    """Pick one unit's pair out of a check's thresholds, for status_above."""
    return {level: limits[f"{level}_{unit}"] for level in ("warning", "critical")}


def _plural(count: int, word: str, plural: str = "") -> str:
    return f"{count} {word if count == 1 else plural or word + 's'}"


def check_replication(cursor: Any) -> CheckResult:
    limits = thresholds("replication")
    cursor.execute("SELECT pg_is_in_recovery()")
    (in_recovery,) = cursor.fetchone()
    found = fetch_rows(
        cursor,
        "SELECT coalesce(application_name, ''), coalesce(host(client_addr), 'local'), state,"
        " sync_state, replay_lsn::text,"
        f" pg_wal_lsn_diff({CURRENT_LSN}, replay_lsn)::bigint,"
        " round(extract(epoch FROM replay_lag)::numeric, 2)::float"
        " FROM pg_stat_replication ORDER BY 1, 2, pid",
    )
    rows = []
    hidden = 0
    for application, client, state, sync_state, replay_lsn, lag_bytes, lag_seconds in found:
        if state is None:
            # Without pg_read_all_stats (pg_monitor) only the pid of a walsender shows.
            hidden += 1
            status = WARNING
        elif state == BACKUP_STATE:
            status = OK
        else:
            status = _worst(
                status_above(lag_bytes, _limits(limits, "bytes")),
                status_above(lag_seconds, _limits(limits, "seconds")),
                # startup, catchup or stopping: connected, but not yet (or no longer) current.
                OK if state == "streaming" else WARNING,
            )
        rows.append(
            [
                application,
                client,
                state or "-",
                sync_state,
                replay_lsn,
                lag_bytes,
                pretty(lag_bytes) if lag_bytes is not None else None,
                lag_seconds,
                status,
            ]
        )
    standbys = [r for r in rows if r[2] != BACKUP_STATE]
    max_bytes = max((r[5] for r in standbys if r[5] is not None), default=None)
    max_seconds = max((r[7] for r in standbys if r[7] is not None), default=None)
    if not rows:
        summary = "No standby is connected to this server (pg_stat_replication is empty)."
        if in_recovery:
            summary = "This server is itself a standby; no standby streams from it."
    else:
        streaming = sum(r[2] == "streaming" for r in standbys)
        summary = (
            f"{_plural(len(standbys), 'standby', 'standbys')} connected, {streaming} streaming"
            + (
                f"; the furthest behind has {pretty(max_bytes)} of WAL to replay"
                if max_bytes is not None
                else ""
            )
            + (f", {fmt(max_seconds)} s of replay lag" if max_seconds is not None else "")
            + "."
        )
        if hidden:
            summary += (
                f" The details of {_plural(hidden, 'walsender')} are hidden from this role "
                "(GRANT pg_monitor TO it)."
            )
    return CheckResult(
        name="replication",
        title="Replication (standbys)",
        status=_worst(*(r[8] for r in rows)),
        summary=summary,
        values={
            "standbys": len(standbys),
            "max_lag_bytes": max_bytes,
            "max_lag_seconds": max_seconds,
        },
        thresholds=dict(limits),
        columns=[
            "standby",
            "client",
            "state",
            "sync",
            "replay lsn",
            "lag bytes",
            "lag",
            "replay lag seconds",
            "status",
        ],
        rows=rows,
        hint="A standby falls behind when it replays slower than the primary writes (an "
        "undersized replica, I/O), when queries on it hold replay back "
        "(max_standby_streaming_delay), or when replay was paused: SELECT "
        "pg_wal_replay_resume(); on the standby. A standby that is not 'streaming' is "
        "catching up or starting. replay_lag is NULL on an idle primary.",
    )


def check_replication_slots(cursor: Any) -> CheckResult:
    limits = thresholds("replication_slots")
    found = fetch_rows(
        cursor,
        "SELECT slot_name, slot_type, database, active, wal_status,"
        f" pg_wal_lsn_diff({CURRENT_LSN}, restart_lsn)::bigint"
        " FROM pg_replication_slots ORDER BY 1",
    )
    rows = []
    for name, kind, database, active, wal_status, retained in found:
        if wal_status in ("lost", "unreserved"):
            # max_slot_wal_keep_size removed (or is about to remove) WAL the consumer
            # still needs: it cannot catch up any more.
            status = CRITICAL
        else:
            status = _worst(
                status_above(retained, _limits(limits, "bytes")),
                # Gone, but still pinning WAL: it only grows from here.
                WARNING if not active and retained is not None else OK,
            )
        rows.append(
            [
                name,
                kind,
                database,
                "yes" if active else "no",
                wal_status or "-",
                retained,
                pretty(retained) if retained is not None else None,
                status,
            ]
        )
    inactive = [r for r in rows if r[3] == "no"]
    retained_all = [r[5] for r in rows if r[5] is not None]
    top = max(retained_all, default=None)
    if not rows:
        summary = "No replication slot on this server: none keeps WAL for a consumer."
    else:
        biggest = max((r for r in rows if r[5] is not None), key=lambda r: r[5], default=None)
        summary = f"{_plural(len(rows), 'replication slot')}, {len(inactive)} inactive" + (
            f"; slot {biggest[0]} keeps the most WAL: {pretty(biggest[5])}."
            if biggest is not None
            else "."
        )
        if inactive:
            names = ", ".join(r[0] for r in inactive)
            summary += f" Inactive (no standby or subscriber connected): {names}."
    return CheckResult(
        name="replication_slots",
        title="Replication slots",
        status=_worst(*(r[7] for r in rows)),
        summary=summary,
        values={"count": len(rows), "inactive": len(inactive), "max_retained_bytes": top},
        thresholds=dict(limits),
        columns=[
            "slot",
            "type",
            "database",
            "active",
            "wal status",
            "retained bytes",
            "retained",
            "status",
        ],
        rows=rows,
        hint="An inactive slot keeps every WAL segment from the moment its consumer left, "
        "until the disk is full and the primary stops. Start the standby (or subscriber) "
        "again, or, if it is gone for good, drop the slot: SELECT "
        "pg_drop_replication_slot('name'); (its standby then needs a new base backup). "
        "max_slot_wal_keep_size caps what a slot may keep; wal status 'lost' means the "
        "consumer can no longer catch up.",
    )


def check_replica(cursor: Any) -> CheckResult:
    """Check the `replica` alias from its own side, whichever connection the others use."""
    limits = thresholds("replica")
    title = "Read replica"
    if REPLICA not in settings.DATABASES:
        return CheckResult(
            name="replica",
            title=title,
            status=OK,
            summary="No read replica is configured (REPLICA_DATABASE_URL is not set): "
            "reporting reads use the primary.",
            thresholds=dict(limits),
        )
    setting = str(settings.DATABASES[REPLICA].get(SETTING_KEY) or "REPLICA_DATABASE_URL")
    try:
        state = _standby_state(REPLICA)
    except DatabaseUnavailable as err:
        # One line naming the setting and libpq's reason, never the password.
        return _replica_critical(limits, str(err))
    except (DatabaseError, psycopg.Error, ImproperlyConfigured, OSError) as err:
        reason = one_line(redact(str(err))) or type(err).__name__
        return _replica_critical(
            limits, f"The read replica ({setting}) cannot be checked: {reason}"
        )
    if not state["in_recovery"]:
        return _replica_critical(limits, str(not_a_standby(setting, state["host"], state["port"])))
    receiver, lag, backlog = state["receiver"], state["lag_seconds"], state["backlog_bytes"]
    row = [
        state["sender"] or "-",
        receiver or "-",
        state["receive_lsn"],
        state["replay_lsn"],
        backlog,
        lag,
        "yes" if state["paused"] else "no",
    ]
    if state["receiver_pid"] is None:
        status = CRITICAL
        summary = (
            "The replica receives no WAL (no WAL receiver is running): it cannot reach the "
            "primary, or it only replays its archive; what it serves grows staler."
        )
    elif receiver is None:
        status = WARNING
        summary = (
            "The replica's WAL receiver is hidden from this role (GRANT pg_monitor TO it): "
            "whether it streams is unknown."
        )
    elif receiver != "streaming":
        status = CRITICAL
        summary = f"The replica's WAL receiver is {receiver!r}, not streaming from the primary."
    else:
        status = OK
        summary = f"The replica is a standby streaming from {state['sender'] or 'the primary'}."
    status = _worst(status, status_above(lag, _limits(limits, "seconds")))
    if lag is not None:
        summary += f" It serves data {fmt(lag)} s behind the primary"
        summary += f" ({pretty(backlog)} received, not yet replayed)." if backlog else "."
        max_lag = getattr(settings, "DB_REPLICA_MAX_LAG", None)
        if max_lag is not None and lag > float(max_lag):
            # The router's own limit (dbops.connections.replicas), usually below these.
            summary += (
                f" Beyond DB_REPLICA_MAX_LAG ({float(max_lag):g} s): reporting reads go to "
                "the primary meanwhile."
            )
    elif backlog:
        # No transaction replayed since it started: how old its data is cannot be told.
        summary += f" It has {pretty(backlog)} of WAL received, not yet replayed."
    if state["paused"]:
        status = _worst(status, WARNING)
        summary += " Replay is paused (pg_wal_replay_pause()): SELECT pg_wal_replay_resume();"
    return CheckResult(
        name="replica",
        title=title,
        status=status,
        summary=summary,
        values={"lag_seconds": lag, "replay_backlog_bytes": backlog},
        thresholds=dict(limits),
        columns=[
            "primary",
            "wal receiver",
            "received lsn",
            "replayed lsn",
            "received, not replayed bytes",
            "lag seconds",
            "replay paused",
        ],
        rows=[row],
        hint="The replica cannot keep up or lost the primary: look at its log, its "
        "primary_conninfo, the slot on the primary (replication_slots) and, on RDS, the "
        "ReplicaLag metric. A replica that stays behind for good must be made again.",
    )


def _replica_critical(limits: dict[str, float], summary: str) -> CheckResult:
    return CheckResult(
        name="replica",
        title="Read replica",
        status=CRITICAL,
        summary=summary,
        values={"lag_seconds": None, "replay_backlog_bytes": None},
        thresholds=dict(limits),
        hint="Reporting reads go to the primary while the replica is unusable "
        "(docs/replica.md); fix REPLICA_DATABASE_URL, or the replica itself.",
    )


def _probe_settings(alias: str) -> dict[str, Any]:
    """The alias's settings for one unpooled, short-lived connection of the check's own."""
    config = dict(connections[alias].settings_dict)
    options = {k: v for k, v in config.get("OPTIONS", {}).items() if k != "pool"}
    options["connect_timeout"] = REPLICA_CONNECT_TIMEOUT_SECONDS
    timeout = int(thresholds("statement_timeout_ms")["value"])
    options["options"] = f"{options.get('options', '')} -c statement_timeout={timeout}".strip()
    config["OPTIONS"] = options
    config["CONN_MAX_AGE"] = 0
    return config


def _standby_state(alias: str) -> dict[str, Any]:
    """Connect to `alias` and read its recovery, WAL receiver and replay state.

    The backend makes the connection (the local cluster's address, a secret's login, and
    a failure as DatabaseUnavailable's one line), but Django's connection machinery is left
    out: its connection_created receivers (django.contrib.postgres) would open the alias's
    own connection; the replica's refusal of a primary (init_connection_state) would speak
    before the check could; and its error wrapper would tell the router the replica failed
    in this request, which would then run again on the primary (dbops.web.replicarouting).
    """
    config = _probe_settings(alias)
    backend = load_backend(config["ENGINE"]).DatabaseWrapper(config, alias)
    conn = backend.get_new_connection(backend.get_connection_params())
    try:
        state: dict[str, Any] = {"host": conn.info.host, "port": conn.info.port}
        # The router's own measure (dbops.connections.replicas): in recovery, and the age
        # of the last replayed transaction while received WAL waits to be replayed.
        in_recovery, lag = conn.execute(LAG_QUERY).fetchone()
        state["in_recovery"] = bool(in_recovery)
        state["lag_seconds"] = round(float(lag), 2) if lag is not None else None
        if not in_recovery:
            return state
        row = conn.execute(
            "SELECT (SELECT pid FROM pg_stat_wal_receiver),"
            " (SELECT status FROM pg_stat_wal_receiver),"
            " (SELECT sender_host || ':' || sender_port FROM pg_stat_wal_receiver),"
            " pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,"
            " pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())::bigint,"
            " pg_is_wal_replay_paused()"
        ).fetchone()
        *found, backlog, paused = row
        keys = ("receiver_pid", "receiver", "sender", "receive_lsn", "replay_lsn")
        state.update(zip(keys, found, strict=True))
        state["backlog_bytes"] = max(backlog, 0) if backlog is not None else None
        state["paused"] = bool(paused)
        return state
    finally:
        conn.close()
