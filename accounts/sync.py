"""Sync user profiles from the Cognito user pool: read it all, plan, check, then write.

The whole pool is read before anything is written: deactivating "users who are gone"
needs every user, and the checks that can refuse (too many deactivations: a wrong pool)
must speak before the first change. The plan (accounts.syncplan) is then written in
batches, one transaction each, updates, then creates, then deactivations; every count in
the summary is what PostgreSQL reports as written, added once the batch has committed. A
run killed midway leaves whole batches applied and the rest as it was; running it again
finishes the job.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from django.db import IntegrityError, connection, transaction

from accounts import cognito
from accounts.cognito import BadUser, CognitoUser
from accounts.models import EMAIL_SHAPE, UserProfile
from accounts.syncplan import Create, Plan, Profile, Update, check_deactivations, plan_sync

BATCH_SIZE = 500
DEFAULT_LIMIT_PERCENT = 10  # COGNITO_DEACTIVATION_LIMIT_PERCENT
INSERT = f"""
INSERT INTO {UserProfile._meta.db_table}
    (cognito_sub, email, email_verified, display_name, is_active)
SELECT * FROM unnest(%s::varchar[], %s::varchar[], %s::boolean[], %s::varchar[], %s::boolean[])
ON CONFLICT DO NOTHING
RETURNING cognito_sub
"""


@dataclass
class SyncSummary:
    seen: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0
    skipped_deleted: int = 0
    skipped_no_email: int = 0
    conflicts: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    no_deactivation_reason: str = ""
    complete: bool = False

    @classmethod
    def of_plan(cls, plan: Plan) -> SyncSummary:
        """What the plan will write: the dry run's report, and the real run's start."""
        return cls(
            seen=plan.seen,
            created=len(plan.creates),
            updated=sum(u.edits for u in plan.updates),
            unchanged=plan.unchanged,
            deactivated=sum(u.deactivates for u in plan.updates) + len(plan.gone),
            skipped_deleted=plan.skipped_deleted,
            skipped_no_email=len(plan.skipped_no_email),
            conflicts=list(plan.conflicts),
            invalid=list(plan.invalid),
            no_deactivation_reason=plan.no_deactivation_reason,
            complete=True,
        )

    @property
    def failed(self) -> int:
        return len(self.conflicts) + len(self.invalid)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def read_pool(
    client: Any,
    pool_id: str,
    page_size: int = 60,
    progress: Callable[[int, int], None] | None = None,
) -> list[CognitoUser | BadUser]:
    users: list[CognitoUser | BadUser] = []
    for number, page in enumerate(cognito.pages(client, pool_id, page_size), start=1):
        users.extend(page)
        if progress is not None:
            progress(number, len(users))
    return users


def load_profiles() -> list[Profile]:
    rows = UserProfile.all_objects.values_list(
        "pk", "cognito_sub", "email", "email_verified", "display_name", "is_active", "deleted_at"
    )
    return [Profile(*row[:6], deleted=row[6] is not None) for row in rows.iterator()]


def rejected_emails(emails: Iterable[str]) -> set[str]:
    """The addresses that the users_email_shape CHECK would refuse, asked of PostgreSQL."""
    wanted = sorted(set(emails))
    if not wanted:
        return set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT e FROM unnest(%s::text[]) AS e WHERE e !~ %s", [wanted, EMAIL_SHAPE])
        return {row[0] for row in cursor.fetchall()}


def make_plan(users: list[CognitoUser | BadUser]) -> Plan:
    emails = (u.email for u in users if isinstance(u, CognitoUser) and u.email)
    return plan_sync(users, load_profiles(), rejected_emails(emails))


def _batches(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _write_updates(batch: list[Update], summary: SyncSummary) -> None:
    updated = deactivated = 0
    conflicts = []
    with transaction.atomic():
        for update in batch:
            try:
                with transaction.atomic():
                    rows = UserProfile.all_objects.filter(
                        pk=update.pk, deleted_at__isnull=True
                    ).update(**update.changes)
            except IntegrityError as err:
                conflicts.append(f"Cognito user {update.sub}: {str(err).splitlines()[0]}")
                continue
            if rows:
                updated += update.edits
                deactivated += update.deactivates
    summary.updated += updated
    summary.deactivated += deactivated
    summary.conflicts.extend(conflicts)


def _write_creates(batch: list[Create], summary: SyncSummary) -> None:
    columns = [
        [c.sub for c in batch],
        [c.email for c in batch],
        [c.email_verified for c in batch],
        [c.display_name for c in batch],
        [c.is_active for c in batch],
    ]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(INSERT, columns)
        written = {row[0] for row in cursor.fetchall()}
    summary.created += len(written)
    summary.conflicts.extend(
        f"Cognito user {c.sub} ({c.email}): another profile took this sub or email meanwhile"
        for c in batch
        if c.sub not in written
    )


def _write_deactivations(batch: list[Profile], summary: SyncSummary) -> None:
    with transaction.atomic():
        rows = UserProfile.all_objects.filter(
            pk__in=[p.pk for p in batch], is_active=True, deleted_at__isnull=True
        ).update(is_active=False)
    summary.deactivated += rows


def execute(plan: Plan, batch_size: int = BATCH_SIZE) -> SyncSummary:
    """Write the plan in batches; count what PostgreSQL wrote, once each batch committed."""
    summary = SyncSummary.of_plan(plan)
    summary.created = summary.updated = summary.deactivated = 0
    summary.complete = False
    for updates in _batches(plan.updates, batch_size):
        _write_updates(updates, summary)
    for creates in _batches(plan.creates, batch_size):
        _write_creates(creates, summary)
    for gone in _batches(plan.gone, batch_size):
        _write_deactivations(gone, summary)
    summary.complete = True
    return summary


def sync(
    client: Any,
    pool_id: str,
    *,
    dry_run: bool = False,
    page_size: int = 60,
    batch_size: int = BATCH_SIZE,
    deactivation_limit_percent: int = DEFAULT_LIMIT_PERCENT,
    allow_mass_deactivation: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SyncSummary:
    """Read the pool, plan, check the plan (which may refuse), then write it unless dry_run."""
    users = read_pool(client, pool_id, page_size, progress)
    plan = make_plan(users)
    check_deactivations(plan, pool_id, deactivation_limit_percent, allow=allow_mass_deactivation)
    if dry_run:
        return SyncSummary.of_plan(plan)
    return execute(plan, batch_size)
