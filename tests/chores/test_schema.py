"""The chores schema (V3+) and the application role's access to every table."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from psycopg import sql as pgsql

from accounts.models import UserProfile
from chores import queries
from chores.audit import acting_as
from chores.models import (
    Assignment,
    AuditLog,
    Completion,
    Household,
    HouseholdMember,
    Notification,
    Task,
    TaskTemplate,
)
from dbops.connections.databases import drop_database
from dbops.localdb.cluster import APP_ROLE
from dbops.roles.provision import grant_application_privileges
from tests.dbschema import (
    CHECK,
    FOREIGN_KEY,
    INTEGRITY_VIOLATION,
    UNIQUE,
    rejects,
    sql,
)
from tests.helpers import run_manage

APP_TABLES = [
    "users",
    "households",
    "household_members",
    "task_templates",
    "tasks",
    "assignments",
    "completions",
    "notifications",
]


def database_env(pg_server: Any, url: str) -> dict[str, str]:
    """Environment for a manage.py subprocess on `url` (no pool, the test server's SSL)."""
    env = dict(os.environ, DJANGO_ENV="test", DB_POOL="false", DATABASE_URL=url)
    env.pop("MIGRATION_DATABASE_URL", None)
    for key, value in pg_server.options.items():
        env[{"sslmode": "DB_SSLMODE", "sslrootcert": "DB_SSLROOTCERT"}[key]] = value
    return env


@pytest.fixture(scope="module")
def provisioned_db(pg_server: Any, django_db_setup: None) -> Iterator[str]:
    """A database provisioned like production (roles first), then migrated by manage.py."""
    name = f"cg_roles_{os.getpid()}"
    with psycopg.connect(**pg_server.conninfo(), autocommit=True) as conn:
        conn.execute(pgsql.SQL("CREATE DATABASE {}").format(pgsql.Identifier(name)))
    try:
        with psycopg.connect(**pg_server.conninfo(name), autocommit=True) as conn:
            grant_application_privileges(conn, database=name, owner=pg_server.user, app=APP_ROLE)
        result = run_manage(
            "migrate", "--no-input", env=database_env(pg_server, pg_server.url(name))
        )
        assert result.returncode == 0, result.stderr
        yield name
    finally:
        drop_database(pg_server.conninfo(), name)


@pytest.fixture
def app_conn(pg_server: Any, provisioned_db: str) -> Iterator[psycopg.Connection[Any]]:
    if pg_server.cluster is None:
        pytest.skip("TEST_DATABASE_URL gives no password for the application role")
    with psycopg.connect(**pg_server.cluster.conninfo("app", provisioned_db)) as conn:
        yield conn
        conn.rollback()


def test_default_privileges_give_the_app_role_crud_on_every_table(
    app_conn: psycopg.Connection[Any],
) -> None:
    for table in APP_TABLES:
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            row = app_conn.execute(
                "SELECT has_table_privilege(current_user, %s, %s)", [table, privilege]
            ).fetchone()
            assert row == (True,), f"{APP_ROLE} lacks {privilege} on {table}"


@pytest.mark.parametrize("granted", [False, True])
def test_the_app_role_reads_but_cannot_write_the_audit_log(
    pg_server: Any, provisioned_db: str, app_conn: psycopg.Connection[Any], granted: bool
) -> None:
    # granted: as if a later GRANT ... ON ALL TABLES had given the privileges back.
    with psycopg.connect(**pg_server.conninfo(provisioned_db), autocommit=True) as owner:
        verb = (
            "GRANT INSERT, UPDATE, DELETE, TRUNCATE ON audit_log TO"
            if granted
            else ("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON audit_log FROM")
        )
        owner.execute(f"{verb} {APP_ROLE}")
        owner.execute(
            "INSERT INTO users (cognito_sub, email) VALUES ('sub-a', 'a@example.com') "
            "ON CONFLICT (cognito_sub) DO NOTHING"
        )
    app_conn.execute("SELECT count(*) FROM audit_log")
    app_conn.commit()
    for statement in (
        "INSERT INTO audit_log (table_name, row_key, action, changes) "
        "VALUES ('users', 'x', 'DELETE', '{}')",
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            app_conn.execute(statement)
        app_conn.rollback()
    # ...while the app's own changes are still audited.
    app_conn.execute("UPDATE users SET display_name = %s WHERE cognito_sub = 'sub-a'", [granted])
    app_conn.commit()
    assert app_conn.execute(
        "SELECT action FROM audit_log WHERE table_name = 'users' ORDER BY id"
    ).fetchall()[-1] == ("UPDATE",)


def test_the_app_role_can_write_and_read_a_profile(app_conn: psycopg.Connection[Any]) -> None:
    row = app_conn.execute(
        "INSERT INTO users (cognito_sub, email) VALUES ('sub-r', 'r@example.com') RETURNING id"
    ).fetchone()
    assert row is not None
    app_conn.execute("UPDATE users SET display_name = 'R' WHERE id = %s", [row[0]])
    assert app_conn.execute(
        "SELECT display_name FROM users WHERE id = %s", [row[0]]
    ).fetchall() == [("R",)]
    app_conn.execute("DELETE FROM users WHERE id = %s", [row[0]])


def test_the_app_role_can_load_the_demo_data(pg_server: Any, provisioned_db: str) -> None:
    if pg_server.cluster is None:
        pytest.skip("TEST_DATABASE_URL gives no password for the application role")
    env = database_env(pg_server, pg_server.cluster.url("app", provisioned_db))
    result = run_manage("demodata", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Done! Demo data: ")
    result = run_manage("demodata", env=env)
    assert "nothing new" in result.stdout, result.stderr


def test_the_app_role_cannot_change_the_schema(app_conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute("ALTER TABLE users ADD COLUMN x int")


@pytest.mark.django_db
def test_every_table_and_column_has_a_comment() -> None:
    missing = sql(
        """
        SELECT c.relname, a.attname
          FROM pg_class c
          JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
          LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
           AND c.relname = ANY(%s)
           AND (obj_description(c.oid, 'pg_class') IS NULL
                OR col_description(c.oid, a.attnum) IS NULL)
        """,
        [[*APP_TABLES, "audit_log"]],
    )
    assert missing == []


# --- the cast: alice owns the Millers, bob is a member, charlie belongs nowhere ------------


@pytest.fixture
def alice() -> UserProfile:
    return UserProfile.objects.create(cognito_sub="sub-alice", email="alice@example.com")


@pytest.fixture
def bob() -> UserProfile:
    return UserProfile.objects.create(cognito_sub="sub-bob", email="bob@example.com")


@pytest.fixture
def charlie() -> UserProfile:
    return UserProfile.objects.create(cognito_sub="sub-charlie", email="charlie@example.com")


@pytest.fixture
def millers(alice: UserProfile, bob: UserProfile) -> Household:
    household = Household.objects.create_with_owner(alice, name="The Millers")
    household.members.create(user=bob, role="member")
    return household


@pytest.fixture
def dishes(millers: Household) -> Task:
    return Task.objects.create(household=millers, title="Dishes", effort_points=3)


def member(household: Household, user: UserProfile) -> HouseholdMember:
    return household.members.get(user=user)


def at_commit(statement: str, params: list[Any] | None = None) -> str:
    """Run the statement, then check deferred constraints as COMMIT would; return the error."""
    return rejects(
        statement + "; SET CONSTRAINTS ALL IMMEDIATE", params, sqlstate=INTEGRITY_VIOLATION
    )


# --- households and members -------------------------------------------------------------


@pytest.mark.django_db
def test_a_household_needs_a_name() -> None:
    rejects("INSERT INTO households (name) VALUES ('  ')", sqlstate=CHECK)


@pytest.mark.django_db
def test_a_household_without_an_owner_is_refused_at_commit() -> None:
    assert "has no owner" in at_commit("INSERT INTO households (name) VALUES ('Lonely')")


@pytest.mark.django_db
def test_a_household_created_with_its_owner_commits(millers: Household) -> None:
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    assert member(millers, millers.members.get(role="owner").user).role == "owner"


@pytest.mark.django_db
def test_a_user_is_a_member_once(millers: Household, bob: UserProfile) -> None:
    rejects(
        "INSERT INTO household_members (household_id, user_id) VALUES (%s, %s)",
        [millers.pk, bob.pk],
        sqlstate=UNIQUE,
    )
    with pytest.raises(ValidationError, match="already a member"):
        HouseholdMember(household=millers, user=bob).full_clean()


@pytest.mark.django_db
def test_a_household_has_at_most_one_owner(millers: Household, charlie: UserProfile) -> None:
    message = rejects(
        "INSERT INTO household_members (household_id, user_id, role) VALUES (%s, %s, 'owner')",
        [millers.pk, charlie.pk],
        sqlstate=UNIQUE,
    )
    assert "household_members_one_owner" in message
    with pytest.raises(ValidationError, match="already has an owner"):
        HouseholdMember(household=millers, user=charlie, role="owner").full_clean()


@pytest.mark.django_db
def test_the_role_must_be_known(millers: Household, charlie: UserProfile) -> None:
    rejects(
        "INSERT INTO household_members (household_id, user_id, role) VALUES (%s, %s, 'boss')",
        [millers.pk, charlie.pk],
        sqlstate=CHECK,
    )
    with pytest.raises(ValidationError) as excinfo:
        HouseholdMember(household=millers, user=charlie, role="boss").full_clean()
    assert "role" in excinfo.value.message_dict


@pytest.mark.django_db
def test_the_owner_cannot_be_demoted_or_removed_alone(
    millers: Household, alice: UserProfile
) -> None:
    owner = member(millers, alice)
    at_commit("UPDATE household_members SET role = 'admin' WHERE id = %s", [owner.pk])
    at_commit("DELETE FROM household_members WHERE id = %s", [owner.pk])
    at_commit("DELETE FROM users WHERE id = %s", [alice.pk])
    owner.role = "admin"
    with pytest.raises(ValidationError, match="transfer ownership"):
        owner.full_clean()


@pytest.mark.django_db
def test_ownership_moves_in_one_transaction(
    millers: Household, alice: UserProfile, bob: UserProfile
) -> None:
    millers.transfer_ownership(member(millers, bob))
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    assert member(millers, bob).role == "owner"
    assert member(millers, alice).role == "admin"


@pytest.mark.django_db
def test_deleting_a_household_removes_its_members(millers: Household) -> None:
    sql("DELETE FROM households WHERE id = %s; SET CONSTRAINTS ALL IMMEDIATE", [millers.pk])
    assert not HouseholdMember.objects.filter(household_id=millers.pk).exists()


# --- templates and tasks ------------------------------------------------------------------


@pytest.mark.django_db
def test_global_template_titles_are_unique_whatever_the_case() -> None:
    TaskTemplate.objects.create(title="Take out the bins")
    rejects("INSERT INTO task_templates (title) VALUES ('TAKE OUT THE BINS')", sqlstate=UNIQUE)
    with pytest.raises(ValidationError, match="global template with this title"):
        TaskTemplate(title="take out the bins").full_clean()


@pytest.mark.django_db
def test_household_template_titles_are_unique_within_the_household(
    millers: Household, charlie: UserProfile
) -> None:
    TaskTemplate.objects.create(title="Bins", household=millers)
    TaskTemplate.objects.create(title="Bins")  # a global one may share the title
    others = Household.objects.create_with_owner(charlie, name="Others")
    TaskTemplate.objects.create(title="Bins", household=others)
    rejects(
        "INSERT INTO task_templates (household_id, title) VALUES (%s, 'bins')",
        [millers.pk],
        sqlstate=UNIQUE,
    )
    with pytest.raises(ValidationError, match="already has a template"):
        TaskTemplate(title="BINS", household=millers).full_clean()


@pytest.mark.parametrize("table", ["task_templates", "tasks"])
@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("effort_points", 0),
        ("effort_points", 101),
        ("title", " "),
        ("recurrence", "every monday"),
        ("recurrence", "INTERVAL=2"),
        ("recurrence", "FREQ=DAILY\nDTSTART:20250101"),
    ],
)
@pytest.mark.django_db
def test_task_checks(millers: Household, table: str, column: str, value: object) -> None:
    values = {"household_id": millers.pk, "title": "T", "starts_on": "2025-01-06", column: value}
    if table == "task_templates":
        del values["starts_on"]
    columns = ", ".join(values)
    rejects(
        f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(values))})",
        list(values.values()),
        sqlstate=CHECK,
    )


@pytest.mark.parametrize(
    "rrule", ["every monday", "INTERVAL=2", "FREQ=FOO", "FREQ=WEEKLY;BYDAY=XX", "FREQ=WEEKLY;X=1"]
)
@pytest.mark.django_db
def test_validation_rejects_a_bad_rrule(millers: Household, rrule: str) -> None:
    for obj in (
        Task(household=millers, title="T", recurrence=rrule),
        TaskTemplate(title="T", recurrence=rrule),
    ):
        with pytest.raises(ValidationError) as excinfo:
            obj.full_clean()
        assert list(excinfo.value.message_dict) == ["recurrence"]


@pytest.mark.django_db
def test_saving_validates_the_rrule_too(millers: Household) -> None:
    with pytest.raises(ValidationError, match="FREQ=FOO"):
        Task.objects.create(household=millers, title="T", recurrence="FREQ=FOO")
    with pytest.raises(ValidationError, match="BYDAY"):
        TaskTemplate.objects.create(title="T", recurrence="FREQ=WEEKLY;BYDAY=XX")


@pytest.mark.django_db
def test_validation_accepts_rrules(millers: Household) -> None:
    for rrule in ("FREQ=WEEKLY;BYDAY=MO,TH", "RRULE:FREQ=MONTHLY;BYMONTHDAY=1;COUNT=12"):
        Task(household=millers, title="T", recurrence=rrule).full_clean()


@pytest.mark.django_db
def test_validation_rejects_effort_out_of_range(millers: Household) -> None:
    with pytest.raises(ValidationError) as excinfo:
        Task(household=millers, title="T", effort_points=0).full_clean()
    assert list(excinfo.value.message_dict) == ["effort_points"]


@pytest.mark.django_db
def test_deleting_a_template_keeps_its_tasks(millers: Household) -> None:
    template = TaskTemplate.objects.create(title="Hoover")
    task = Task.objects.create(household=millers, title="Hoover", template=template)
    sql("DELETE FROM task_templates WHERE id = %s", [template.pk])
    task.refresh_from_db()
    assert task.template_id is None


# --- assignments --------------------------------------------------------------------------

DUE = datetime(2025, 3, 3, 18, 0, tzinfo=UTC)


@pytest.mark.django_db
def test_an_assignment_is_unique_per_task_and_due_time(dishes: Task) -> None:
    Assignment.objects.create(task=dishes, due_at=DUE)
    rejects(
        "INSERT INTO assignments (task_id, household_id, due_at) VALUES (%s, %s, %s)",
        [dishes.pk, dishes.household_id, DUE],
        sqlstate=UNIQUE,
    )
    with pytest.raises(ValidationError, match="already has an assignment due"):
        Assignment(task=dishes, due_at=DUE).full_clean()
    Assignment(task=dishes, due_at=DUE + timedelta(days=1)).full_clean()


@pytest.mark.django_db
def test_an_assignment_belongs_to_its_tasks_household(dishes: Task, charlie: UserProfile) -> None:
    others = Household.objects.create_with_owner(charlie, name="Others")
    message = rejects(
        "INSERT INTO assignments (task_id, household_id, due_at) VALUES (%s, %s, %s)",
        [dishes.pk, others.pk, DUE],
        sqlstate=FOREIGN_KEY,
    )
    assert "assignments_task_household_fkey" in message
    outsider = member(others, charlie)
    message = rejects(
        "INSERT INTO assignments (task_id, household_id, assignee_id, due_at) "
        "VALUES (%s, %s, %s, %s)",
        [dishes.pk, dishes.household_id, outsider.pk, DUE],
        sqlstate=FOREIGN_KEY,
    )
    assert "assignments_assignee_household_fkey" in message
    with pytest.raises(ValidationError) as excinfo:
        Assignment(task=dishes, assignee=outsider, due_at=DUE).full_clean()
    assert list(excinfo.value.message_dict) == ["assignee"]


@pytest.mark.django_db
def test_the_status_must_be_known(dishes: Task) -> None:
    rejects(
        "INSERT INTO assignments (task_id, household_id, due_at, status) "
        "VALUES (%s, %s, %s, 'later')",
        [dishes.pk, dishes.household_id, DUE],
        sqlstate=CHECK,
    )


@pytest.mark.django_db
def test_the_database_allows_exactly_the_model_transitions(dishes: Task) -> None:
    statuses = [s.value for s in Assignment.Status]
    allowed = set()
    for i, (before, after) in enumerate(itertools.product(statuses, statuses)):
        if before == after:
            continue
        (pk,), *_ = sql(
            "INSERT INTO assignments (task_id, household_id, due_at, status) "
            "VALUES (%s, %s, %s, %s) RETURNING id",
            [dishes.pk, dishes.household_id, DUE + timedelta(days=i), before],
        )
        try:
            with transaction.atomic():
                sql("UPDATE assignments SET status = %s WHERE id = %s", [after, pk])
            allowed.add((before, after))
        except IntegrityError as err:
            assert err.__cause__.sqlstate == CHECK  # type: ignore[union-attr]
    expected = {(b, a) for b, targets in Assignment.TRANSITIONS.items() for a in targets}
    assert allowed == expected


@pytest.mark.django_db
def test_a_status_change_is_stamped(dishes: Task) -> None:
    assignment = Assignment.objects.create(task=dishes, due_at=DUE)
    sql("UPDATE assignments SET status_changed_at = '2001-01-01' WHERE id = %s", [assignment.pk])
    sql("UPDATE assignments SET status = 'done' WHERE id = %s", [assignment.pk])
    (changed, now), *_ = sql(
        "SELECT status_changed_at, now() FROM assignments WHERE id = %s", [assignment.pk]
    )
    assert changed == now


@pytest.mark.django_db
def test_validation_refuses_a_forbidden_transition(dishes: Task) -> None:
    Assignment.objects.create(task=dishes, due_at=DUE, status="cancelled")
    assignment = Assignment.objects.get()
    assignment.status = "open"
    with pytest.raises(ValidationError, match="cannot change from cancelled to open"):
        assignment.full_clean()
    assignment.status = "cancelled"
    assignment.full_clean()


@pytest.mark.django_db
def test_removing_a_member_unassigns_their_assignments(
    dishes: Task, millers: Household, bob: UserProfile
) -> None:
    assignment = Assignment.objects.create(task=dishes, due_at=DUE, assignee=member(millers, bob))
    sql("DELETE FROM household_members WHERE id = %s", [assignment.assignee_id])
    assignment.refresh_from_db()
    assert assignment.assignee_id is None


# --- completions --------------------------------------------------------------------------


def complete(household: Household, **values: Any) -> None:
    values = {"household_id": household.pk, "points": 3, **values}
    sql(
        f"INSERT INTO completions ({', '.join(values)}) VALUES ({', '.join(['%s'] * len(values))})",
        list(values.values()),
    )


@pytest.mark.parametrize(
    ("column", "value"), [("points", -1), ("points", 1001), ("note", "x" * 1001)]
)
@pytest.mark.django_db
def test_completion_checks(millers: Household, column: str, value: object) -> None:
    with pytest.raises(IntegrityError), transaction.atomic():
        complete(millers, **{column: value})


@pytest.mark.django_db
def test_completion_validation(millers: Household, charlie: UserProfile) -> None:
    others = Household.objects.create_with_owner(charlie, name="Others")
    completion = Completion(
        household=millers,
        member=member(others, charlie),
        task=Task.objects.create(household=others, title="X"),
        points=1001,
    )
    with pytest.raises(ValidationError) as excinfo:
        completion.full_clean()
    assert set(excinfo.value.message_dict) == {"points", "member", "task"}


@pytest.mark.django_db
def test_a_completion_is_by_a_member_and_of_a_task_of_its_household(
    millers: Household, dishes: Task, charlie: UserProfile
) -> None:
    others = Household.objects.create_with_owner(charlie, name="Others")
    outsider = member(others, charlie)
    for column, value, constraint in (
        ("member_id", outsider.pk, "completions_member_household_fkey"),
        (
            "task_id",
            Task.objects.create(household=others, title="X").pk,
            "completions_task_household_fkey",
        ),
    ):
        with pytest.raises(IntegrityError) as excinfo, transaction.atomic():
            complete(millers, **{column: value})
        assert excinfo.value.__cause__.sqlstate == FOREIGN_KEY  # type: ignore[union-attr]
        assert constraint in str(excinfo.value)
    complete(millers, member_id=millers.members.get(role="member").pk, task_id=dishes.pk)


@pytest.mark.django_db
def test_a_task_uses_a_global_template_or_its_households_own(
    millers: Household, charlie: UserProfile
) -> None:
    others = Household.objects.create_with_owner(charlie, name="Others")
    theirs = TaskTemplate.objects.create(title="Theirs", household=others)
    with pytest.raises(ValidationError) as excinfo:
        Task(household=millers, title="T", template=theirs).full_clean()
    assert list(excinfo.value.message_dict) == ["template"]
    Task(household=millers, title="T", template=TaskTemplate.objects.create(title="G")).full_clean()


@pytest.mark.django_db
def test_completions_land_in_their_month_partition(millers: Household) -> None:
    now = timezone.now()
    far = now.replace(year=now.year + 5)
    Completion.objects.create(household=millers, points=2, completed_at=now)
    Completion.objects.create(household=millers, points=2, completed_at=far)
    rows = sql("SELECT tableoid::regclass::text FROM completions ORDER BY completed_at")
    assert rows == [(f"completions_y{now:%Y}m{now:%m}",), ("completions_default",)]


@pytest.mark.django_db
def test_monthly_partitions_exist_around_now_and_creation_is_idempotent() -> None:
    today = timezone.now().date().replace(day=1)
    for months in (-3, 0, 6):
        month = (today.replace(day=15) + timedelta(days=30.4 * months)).replace(day=1)
        assert sql("SELECT to_regclass(%s)", [f"completions_y{month:%Y}m{month:%m}"]) != [(None,)]
    made = sql("SELECT choregarden_create_completion_partitions(%s, %s)", [today, today])
    assert made == [(0,)]


@pytest.mark.django_db
def test_the_completions_key_includes_the_partition_key(millers: Household) -> None:
    rows = sql(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'completions'::regclass AND contype = 'p'"
    )
    assert rows == [("PRIMARY KEY (id, completed_at)",)]


@pytest.mark.django_db
def test_removing_a_member_keeps_their_completions(millers: Household, bob: UserProfile) -> None:
    bobs = member(millers, bob)
    Completion.objects.create(household=millers, member=bobs, points=5)
    sql("DELETE FROM household_members WHERE id = %s", [bobs.pk])
    assert list(Completion.objects.values_list("member_id", "points")) == [(None, 5)]


# --- notifications ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("kind", "gossip"),
        ("payload", "[1, 2]"),
        ("delivered_channels", "{email,pigeon}"),
        ("read_at", "2000-01-01"),
    ],
)
@pytest.mark.django_db
def test_notification_checks(alice: UserProfile, column: str, value: str) -> None:
    values = {"recipient_id": alice.pk, "kind": "system", column: value}
    rejects(
        f"INSERT INTO notifications ({', '.join(values)}) "
        f"VALUES ({', '.join(['%s'] * len(values))})",
        list(values.values()),
        sqlstate=CHECK,
    )


@pytest.mark.django_db
def test_notification_validation(alice: UserProfile) -> None:
    notification = Notification(
        recipient=alice, kind="gossip", payload=[1], delivered_channels=["pigeon"]
    )
    with pytest.raises(ValidationError) as excinfo:
        notification.full_clean()
    assert {"kind", "delivered_channels"} <= set(excinfo.value.message_dict)
    notification = Notification(recipient=alice, kind="system", payload=[1])
    with pytest.raises(ValidationError, match="JSON object"):
        notification.full_clean()


# --- triggers: updated_at and the audit log ----------------------------------------------


@pytest.mark.parametrize(
    "table", ["households", "household_members", "task_templates", "tasks", "assignments"]
)
@pytest.mark.django_db
def test_the_database_maintains_updated_at(dishes: Task, table: str) -> None:
    Assignment.objects.create(task=dishes, due_at=DUE)
    TaskTemplate.objects.create(title="T")
    sql(f"UPDATE {table} SET updated_at = '2001-01-01'")
    assert sql(f"SELECT DISTINCT updated_at = now() FROM {table}") == [(True,)]


@pytest.mark.django_db
def test_the_audit_log_records_changes_with_the_actor(millers: Household) -> None:
    with acting_as("staff:alice"):
        task = Task.objects.create(household=millers, title="Windows", effort_points=2)
        Task.objects.filter(pk=task.pk).update(title="Windows inside", effort_points=4)
        Task.objects.filter(pk=task.pk).update(updated_at=timezone.now())  # no audit row
        Task.objects.filter(pk=task.pk).delete()
    rows = list(AuditLog.objects.filter(table_name="tasks").order_by("id"))
    assert [(r.action, r.row_key, r.actor) for r in rows] == [
        ("INSERT", str(task.pk), "staff:alice"),
        ("UPDATE", str(task.pk), "staff:alice"),
        ("DELETE", str(task.pk), "staff:alice"),
    ]
    assert rows[0].changes["title"] == {"old": None, "new": "Windows"}
    assert rows[1].changes == {
        "title": {"old": "Windows", "new": "Windows inside"},
        "effort_points": {"old": 2, "new": 4},
    }
    assert rows[2].changes["title"] == {"old": "Windows inside", "new": None}
    assert len({r.txid for r in rows}) == 1


@pytest.mark.django_db
def test_the_audit_log_covers_profiles_and_has_no_actor_unless_set(alice: UserProfile) -> None:
    row = AuditLog.objects.get(table_name="users", row_key=str(alice.pk))
    assert row.action == "INSERT"
    assert row.actor is None
    assert row.changes["email"]["new"] == "alice@example.com"
    UserProfile.objects.filter(pk=alice.pk).update(last_seen_at=timezone.now())
    assert AuditLog.objects.filter(row_key=str(alice.pk)).count() == 1  # bookkeeping only


# --- the query patterns use their indexes ------------------------------------------------


@pytest.mark.django_db
def test_the_query_patterns_return_the_right_rows(
    dishes: Task, millers: Household, alice: UserProfile
) -> None:
    # That each one uses its index, on ANALYZEd data: tests/chores/test_query_patterns.py.
    now = timezone.now()
    bobs = millers.members.get(role="member")
    Assignment.objects.create(task=dishes, due_at=now, assignee=bobs)
    Completion.objects.create(household=millers, member=bobs, points=3, completed_at=now)
    Completion.objects.create(household=millers, member=bobs, points=4, completed_at=now)
    Notification.objects.create(recipient=alice, kind="system")
    board = list(queries.leaderboard(millers, now.year, now.month))
    assert [(r["member"], r["points"]) for r in board] == [(bobs.pk, 7)]
    assert [n.recipient_id for n in queries.unread_notifications(alice.pk)] == [alice.pk]
    assert UserProfile.objects.by_email("ALICE@example.com").get() == alice


def test_the_undo_files_take_the_schema_back_and_it_migrates_again(
    pg_server: Any, provisioned_db: str
) -> None:
    env = database_env(pg_server, pg_server.url(provisioned_db))
    back = run_manage("migrate", "accounts", "zero", "--no-input", env=env)
    assert back.returncode == 0, back.stderr
    with psycopg.connect(**pg_server.conninfo(provisioned_db)) as conn:
        left = conn.execute(
            "SELECT relname FROM pg_class WHERE relname = ANY(%s)", [[*APP_TABLES, "audit_log"]]
        ).fetchall()
        versions = conn.execute("SELECT version FROM flyway_schema_history").fetchall()
    assert left == []
    assert versions == [("1",)]
    again = run_manage("migrate", "--no-input", env=env)
    assert again.returncode == 0, again.stderr
