"""The `flyway_schema_history` table, with Flyway's PostgreSQL DDL and values (D2)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from sqlmigrations.lib.versions import Version

BASELINE_DESCRIPTION = "<< Flyway Baseline >>"
# Flyway's types: SQL for V and R files, BASELINE, DELETE (a repair marking a missing
# version as deleted), UNDO_SQL for undo files.
TYPE_SQL = "SQL"
TYPE_BASELINE = "BASELINE"
TYPE_DELETE = "DELETE"
TYPE_UNDO = "UNDO_SQL"

COLUMNS = (
    "installed_rank, version, description, type, script, checksum, installed_by, "
    "installed_on, execution_time, success"
)


@dataclass(frozen=True)
class HistoryRow:
    """One row of flyway_schema_history."""

    installed_rank: int
    version: str | None
    description: str
    type: str
    script: str
    checksum: int | None
    installed_by: str
    installed_on: datetime
    execution_time: int
    success: bool

    @property
    def parsed_version(self) -> Version | None:
        return Version(self.version) if self.version else None


# Quoted table names by (schema, table, client encoding): quoting one is a libpq call.
_quoted: dict[tuple[str, str, str], str] = {}


class SchemaHistory:
    """Read and write one schema history table through a DB-API cursor."""

    def __init__(self, cursor: Any, schema: str = "public", table: str = "flyway_schema_history"):
        self.cursor = cursor
        self.schema = schema
        self.table = table
        self.ident = sql.Identifier(schema, table)

    @property
    def quoted_name(self) -> str:
        """Return `"schema"."table"`, as Flyway's Table.toString() prints it."""
        return f'"{self.schema}"."{self.table}"'

    def _execute(self, query: sql.Composable, params: Any = None) -> Any:
        # Compose against the underlying psycopg connection so Django cursors work too.
        raw = getattr(self.cursor, "cursor", self.cursor)
        return self.cursor.execute(query.as_string(raw.connection), params)

    def has_table(self) -> bool:
        self._execute(sql.SQL("SELECT to_regclass(%s)"), [self.quoted_name])
        return self.cursor.fetchone()[0] is not None

    def ensure_table(self) -> bool:
        """Create the table with Flyway's PostgreSQL DDL unless it exists; return if created."""
        if self.has_table():
            return False
        pk = sql.Identifier(f"{self.table}_pk")
        idx = sql.Identifier(f"{self.table}_s_idx")
        # createMetaDataTable.sql of Flyway's PostgreSQL support, verbatim but for names.
        self._execute(
            sql.SQL(
                "CREATE TABLE {t} ("
                ' "installed_rank" INT NOT NULL,'
                ' "version" VARCHAR(50),'
                ' "description" VARCHAR(200) NOT NULL,'
                ' "type" VARCHAR(20) NOT NULL,'
                ' "script" VARCHAR(1000) NOT NULL,'
                ' "checksum" INTEGER,'
                ' "installed_by" VARCHAR(100) NOT NULL,'
                ' "installed_on" TIMESTAMP NOT NULL DEFAULT now(),'
                ' "execution_time" INTEGER NOT NULL,'
                ' "success" BOOLEAN NOT NULL'
                ");"
                " ALTER TABLE {t} ADD CONSTRAINT {pk} PRIMARY KEY (installed_rank);"
                " CREATE INDEX {idx} ON {t} (success);"
            ).format(t=self.ident, pk=pk, idx=idx)
        )
        self._restrict_application_role()
        return True

    def _restrict_application_role(self) -> None:
        # Default privileges (D4) give the application role CRUD on every new table; the
        # history is the owner's record, so everyone else may only read it.
        self._execute(
            sql.SQL(
                "SELECT grantee FROM information_schema.role_table_grants"
                " WHERE table_schema = %s AND table_name = %s AND grantee <> current_user"
                " AND privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')"
            ),
            [self.schema, self.table],
        )
        for (grantee,) in {tuple(r) for r in self.cursor.fetchall()}:
            self._execute(
                sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
                    self.ident, sql.Identifier(grantee)
                )
            )

    def rows(self) -> list[HistoryRow]:
        """Return every row in installed_rank order (none when the table is absent)."""
        if not self.has_table():
            return []
        self._execute(
            sql.SQL("SELECT " + COLUMNS + " FROM {} ORDER BY installed_rank").format(self.ident)
        )
        return [HistoryRow(*row) for row in self.cursor.fetchall()]

    def insert(
        self,
        *,
        version: str | None,
        description: str,
        type: str,
        script: str,
        checksum: int | None,
        execution_time: int,
        success: bool,
    ) -> int:
        """Append a row with the next installed_rank; return that rank."""
        # installed_by is current_user, as Flyway records the database user by default.
        self._execute(
            sql.SQL(
                "INSERT INTO {t} (" + COLUMNS + ") SELECT"
                " COALESCE(MAX(installed_rank), 0) + 1, %s, %s, %s, %s, %s, current_user,"
                " now(), %s, %s FROM {t} RETURNING installed_rank"
            ).format(t=self.ident),
            [version, description[:200], type, script[:1000], checksum, execution_time, success],
        )
        return int(self.cursor.fetchone()[0])

    def insert_after(
        self,
        *,
        version: str | None,
        description: str,
        type: str,
        script: str,
        checksum: int | None,
        success: bool,
    ) -> str:
        """Return an INSERT of a row to send in the same query string as the file it records.

        Its execution_time is the time since the server received that query string, so
        the file and its row cost one round trip and commit together.
        """
        # Only the values change from file to file: composing the whole statement with
        # psycopg's sql module cost more client time per file than the server spent on it.
        conn = getattr(self.cursor, "cursor", self.cursor).connection
        table = self.quoted_ident(conn)
        values = [
            sql.Literal(v).as_string(conn)
            for v in (version, description[:200], type, script[:1000], checksum, success)
        ]
        return (
            f"INSERT INTO {table} ({COLUMNS}) SELECT COALESCE(MAX(installed_rank), 0) + 1,"
            f" {', '.join(values[:5])}, current_user, now(),"
            " (extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000)::int,"
            f" {values[5]} FROM {table}"
        )

    def quoted_ident(self, conn: Any) -> str:
        """Return the table's name quoted as an identifier, as psycopg quotes it for `conn`."""
        key = (self.schema, self.table, conn.info.encoding)
        quoted = _quoted.get(key)
        if quoted is None:
            quoted = _quoted[key] = self.ident.as_string(conn)
        return quoted

    def delete_sql(self, row: HistoryRow) -> str:
        """Return a DELETE of one row, to send in the same query string as other SQL."""
        raw = getattr(self.cursor, "cursor", self.cursor)
        return (
            sql.SQL("DELETE FROM {} WHERE installed_rank = {}")
            .format(self.ident, sql.Literal(row.installed_rank))
            .as_string(raw.connection)
        )

    def delete(self, installed_rank: int) -> None:
        self._execute(
            sql.SQL("DELETE FROM {} WHERE installed_rank = %s").format(self.ident),
            [installed_rank],
        )

    def update_checksum(
        self, installed_rank: int, checksum: int, description: str, script: str
    ) -> None:
        """Realign a row with its file, as Flyway's repair does."""
        self._execute(
            sql.SQL(
                "UPDATE {} SET checksum = %s, description = %s, script = %s"
                " WHERE installed_rank = %s"
            ).format(self.ident),
            [checksum, description[:200], script[:1000], installed_rank],
        )
