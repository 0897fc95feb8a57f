"""`dbroles check`: connect as the application role and prove what it may do and may not.

Two kinds of evidence: statements run as the role (each in a savepoint, all rolled back),
and the catalog's own answer to "what may this role write" (has_table_privilege over
every relation), which must name application tables only (dbops.roles.privileges).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbops.connections.waits import TIMEOUTS, current, role_defaults
from dbops.roles.privileges import DJANGO_HISTORY_TABLE, FLYWAY_HISTORY_TABLE, Relation
from dbops.roles.provision import MONITORING_ROLE

# What `dbroles check` writes into the probe table (rolled back at the end).
PROBE_MARK = "dbroles check probe"


@dataclass(frozen=True)
class Probe:
    """One statement run as the application role, and whether it should be allowed."""

    label: str
    statement: str
    allowed: bool
    changes_rows: bool = False


@dataclass(frozen=True)
class ProbeResult:
    label: str
    expected: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "check": self.label,
            "expected": self.expected,
            "ok": self.ok,
            "detail": self.detail,
        }


def application_role_probes(
    probe_table: str = "migration_test",
    history_table: str = FLYWAY_HISTORY_TABLE,
    django_history_table: str = DJANGO_HISTORY_TABLE,
    extension_members: Sequence[Relation] = (),
) -> list[Probe]:
    """What the application role must be able to do, and what it must not.

    `extension_members` (tables and views an extension created) must refuse a write
    lock: LOCK ... IN ROW EXCLUSIVE MODE needs INSERT, UPDATE, DELETE or TRUNCATE, and
    unlike an INSERT it gets that far on a view that is not updatable.
    """
    t, h, d = (sql.Identifier(n) for n in (probe_table, history_table, django_history_table))
    mark = sql.Literal(PROBE_MARK)

    def q(text: str) -> str:
        return sql.SQL(text).format(t=t, h=h, d=d, mark=mark).as_string(None)

    probes = [
        Probe(f"SELECT on {probe_table}", q("SELECT count(*) FROM {t}"), True),
        Probe(f"INSERT on {probe_table}", q("INSERT INTO {t} (name) VALUES ({mark})"), True, True),
        Probe(
            f"UPDATE on {probe_table}",
            q("UPDATE {t} SET name = {mark} WHERE name = {mark}"),
            True,
            True,
        ),
        Probe(f"DELETE on {probe_table}", q("DELETE FROM {t} WHERE name = {mark}"), True, True),
        Probe(f"SELECT on {history_table}", q("SELECT count(*) FROM {h}"), True),
        Probe(f"SELECT on {django_history_table}", q("SELECT count(*) FROM {d}"), True),
        Probe("CREATE TABLE", q("CREATE TABLE dbroles_probe (id int)"), False),
        Probe("CREATE TEMPORARY TABLE", q("CREATE TEMPORARY TABLE dbroles_probe (id int)"), False),
        Probe(
            f"ALTER TABLE {probe_table}", q("ALTER TABLE {t} ADD COLUMN dbroles_probe int"), False
        ),
        Probe(f"DROP TABLE {probe_table}", q("DROP TABLE {t}"), False),
        Probe(f"TRUNCATE {probe_table}", q("TRUNCATE {t}"), False),
        Probe("CREATE SCHEMA", q("CREATE SCHEMA dbroles_probe"), False),
        Probe(
            f"INSERT on {history_table}",
            q(
                "INSERT INTO {h} (installed_rank, description, type, script,"
                " installed_by, execution_time, success)"
                " VALUES (-1, {mark}, 'SQL', {mark}, current_user, 0, true)"
            ),
            False,
        ),
        Probe(f"UPDATE on {history_table}", q("UPDATE {h} SET success = success"), False),
        Probe(f"DELETE on {history_table}", q("DELETE FROM {h} WHERE installed_rank < 0"), False),
        Probe(
            f"INSERT on {django_history_table}",
            q("INSERT INTO {d} (app, name, applied) VALUES ({mark}, {mark}, now())"),
            False,
        ),
        Probe(f"UPDATE on {django_history_table}", q("UPDATE {d} SET name = name"), False),
        Probe(f"DELETE on {django_history_table}", q("DELETE FROM {d} WHERE id < 0"), False),
    ]
    for rel in extension_members:
        if rel.is_sequence:
            continue
        statement = sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE NOWAIT").format(rel.identifier)
        probes.append(
            Probe(
                f"write on {rel.qualified} ({rel.reason})",
                statement.as_string(None),
                False,
            )
        )
    return probes


def catalog_results(relations: Sequence[Relation]) -> list[ProbeResult]:
    """What the catalog says the role may write: application tables only, or a FAIL each."""
    writable = [r for r in relations if r.app_can_write]
    wrong = [r for r in writable if r.kind != "application"]
    # Even reading needs no grant of its own on an extension's objects (PUBLIC may read).
    wrong += [r for r in relations if r.extension and r.granted_to_app and not r.app_can_write]
    tables = sum(1 for r in writable if r.kind == "application" and not r.is_sequence)
    sequences = sum(1 for r in writable if r.kind == "application" and r.is_sequence)
    results = [
        ProbeResult(
            "writable relations (from the catalog) are application tables",
            "only",
            not wrong,
            f"{tables} tables and {sequences} sequences, all application tables"
            if not wrong
            else f"{len(wrong)} other relation(s) writable or granted",
        )
    ]
    for rel in wrong:
        what = "write access" if rel.app_can_write else "grants of its own"
        results.append(
            ProbeResult(
                f"{what} on {rel.qualified}",
                "denied",
                False,
                f"allowed, should be denied: {rel.reason}",
            )
        )
    return results


def _role_facts(conn: Any) -> list[ProbeResult]:
    ssl, attrs, member_of = conn.execute(
        "SELECT (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()),"
        " (SELECT concat_ws(' ', CASE WHEN rolsuper THEN 'SUPERUSER' END,"
        "   CASE WHEN rolcreatedb THEN 'CREATEDB' END,"
        "   CASE WHEN rolcreaterole THEN 'CREATEROLE' END,"
        "   CASE WHEN rolbypassrls THEN 'BYPASSRLS' END,"
        "   CASE WHEN rolreplication THEN 'REPLICATION' END)"
        "  FROM pg_roles WHERE rolname = current_user),"
        " (SELECT array_agg(g.rolname::text ORDER BY g.rolname) FROM pg_auth_members m"
        "  JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member"
        "  WHERE u.rolname = current_user)"
    ).fetchone()
    member_of = member_of or []
    extra_roles = [r for r in member_of if r != MONITORING_ROLE]
    return [
        ProbeResult("connection encrypted", "yes", bool(ssl), "SSL" if ssl else "not encrypted"),
        ProbeResult(
            "role attributes (SUPERUSER, CREATEDB, CREATEROLE, BYPASSRLS, REPLICATION)",
            "none",
            not attrs,
            f"has {attrs}" if attrs else "none",
        ),
        ProbeResult(
            f"membership in other roles (only {MONITORING_ROLE} allowed)",
            "none",
            not extra_roles,
            f"member of {', '.join(extra_roles)}"
            if extra_roles
            else ", ".join(member_of) or "none",
        ),
    ]


def timeout_results(conn: Any) -> list[ProbeResult]:
    """Each timeout of this session (what the application's connections get) must be set."""
    values, defaults = current(conn), role_defaults(conn)
    results = []
    for name, setting in TIMEOUTS.items():
        value = values[name]
        ok = value not in ("0", "0ms")
        role = f"role default {defaults[name]}" if name in defaults else "no role default"
        detail = (
            f"{value} ({role})"
            if ok
            else f"0, no limit ({role}): set {setting} or run `manage.py dbroles provision` "
            "as an admin (--url)"
        )
        results.append(ProbeResult(f"{name} (bounded waits)", "set", ok, detail))
    return results


def check_application_role(
    conn: Any, probes: Sequence[Probe], relations: Sequence[Relation] = ()
) -> list[ProbeResult]:
    """Run each probe in one transaction that is rolled back; nothing is left behind.

    `relations` (dbops.roles.privileges.classify, as this role) adds the catalog's evidence.
    """
    results = _role_facts(conn) + timeout_results(conn)
    results += catalog_results(relations) if relations else []
    with conn.transaction(force_rollback=True):
        # A misconfigured role could queue for a table lock; never hang the check on one.
        conn.execute("SET LOCAL lock_timeout = '5s'")
        conn.execute("SET LOCAL statement_timeout = '30s'")
        for probe in probes:
            expected = "allowed" if probe.allowed else "denied"
            try:
                with conn.transaction():
                    cursor = conn.execute(probe.statement)
            except psycopg.errors.InsufficientPrivilege:
                ok = not probe.allowed
                detail = "denied" + ("" if ok else ", should be allowed")
            except psycopg.errors.UndefinedTable as err:
                ok = False
                detail = f"error: {err.diag.message_primary}; run `manage.py migrate` first"
            except psycopg.Error as err:
                ok, detail = False, f"error: {err.diag.message_primary or type(err).__name__}"
            else:
                if probe.allowed and probe.changes_rows and cursor.rowcount < 1:
                    ok, detail = False, "allowed but changed no row"
                else:
                    ok = probe.allowed
                    detail = "allowed" + ("" if ok else ", should be denied")
            results.append(ProbeResult(probe.label, expected, ok, detail))
    return results
