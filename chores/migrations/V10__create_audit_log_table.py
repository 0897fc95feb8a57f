import django.contrib.postgres.indexes
import django.db.models.functions.datetime
from django.db import migrations, models

from sqlmigrations.operations import RunSQLFile, SQLFileMigration


class Migration(SQLFileMigration):
    dependencies = [("chores", "V9__create_notifications_table")]
    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[RunSQLFile("V10__create_audit_log_table.sql")],
            state_operations=[
                migrations.CreateModel(
                    name="AuditLog",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True,
                                primary_key=True,
                                serialize=False,
                                verbose_name="ID",
                            ),
                        ),
                        (
                            "table_name",
                            models.CharField(db_comment="Table of the changed row.", max_length=63),
                        ),
                        (
                            "row_key",
                            models.CharField(
                                db_comment="Primary key (id) of the changed row, as text.",
                                max_length=64,
                            ),
                        ),
                        (
                            "action",
                            models.CharField(
                                choices=[
                                    ("INSERT", "Insert"),
                                    ("UPDATE", "Update"),
                                    ("DELETE", "Delete"),
                                ],
                                db_comment="INSERT, UPDATE or DELETE.",
                                max_length=6,
                            ),
                        ),
                        (
                            "changes",
                            models.JSONField(
                                db_comment='Changed columns: {"column": {"old": value, "new": value}}; old is null for INSERT, new is null for DELETE; updated_at and last_seen_at are left out.'
                            ),
                        ),
                        (
                            "actor",
                            models.CharField(
                                blank=True,
                                db_comment="Who made the change, from the transaction's choregarden.actor setting (e.g. user:<uuid>, staff:<name>); NULL if not set.",
                                max_length=200,
                                null=True,
                            ),
                        ),
                        (
                            "txid",
                            models.BigIntegerField(
                                db_comment="Transaction id: rows with the same txid were one change.",
                                db_default=models.Func(
                                    function="txid_current", output_field=models.BigIntegerField()
                                ),
                            ),
                        ),
                        (
                            "occurred_at",
                            models.DateTimeField(
                                db_comment="Transaction time of the change.",
                                db_default=django.db.models.functions.datetime.Now(),
                            ),
                        ),
                    ],
                    options={
                        "db_table": "audit_log",
                        "db_table_comment": "Change history of the application tables, written by the choregarden_audit() triggers; read-only for the application.",
                        "indexes": [
                            models.Index(
                                fields=["table_name", "row_key", "occurred_at"],
                                name="audit_log_row",
                            ),
                            django.contrib.postgres.indexes.BrinIndex(
                                fields=["occurred_at"], name="audit_log_occurred_at"
                            ),
                        ],
                        "constraints": [
                            models.CheckConstraint(
                                condition=models.Q(("action__in", ["INSERT", "UPDATE", "DELETE"])),
                                name="audit_log_action_valid",
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
