"""What a Cognito sync will do, worked out before anything is written.

`cognitosync --dry-run` prints this plan and the real run executes it, so both see the
same creates, updates, deactivations and conflicts. Emails are unique case-insensitively
among live profiles (users_email_lower_uniq); the plan walks the users in the order the
run writes them (updates of existing profiles first, then new profiles by creation
date) and tracks which live profile holds each address, so a duplicate within the pool
or against a stored profile is a conflict here, not an IntegrityError halfway through.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from accounts.cognito import BadUser, CognitoSyncError, CognitoUser

# A run may always deactivate this many profiles, whatever the percentage says.
DEACTIVATION_FLOOR = 10
_EPOCH = datetime.min.replace(tzinfo=UTC)


class MassDeactivationRefused(CognitoSyncError):
    """The run would deactivate more profiles than the limit: nothing was changed."""


@dataclass(frozen=True)
class Profile:
    """The stored fields of one profile that a sync reads or writes."""

    pk: Any
    sub: str
    email: str
    email_verified: bool
    display_name: str
    is_active: bool
    deleted: bool


@dataclass(frozen=True)
class Create:
    sub: str
    email: str
    email_verified: bool
    display_name: str
    is_active: bool


@dataclass(frozen=True)
class Update:
    pk: Any
    sub: str
    changes: dict[str, Any]

    @property
    def deactivates(self) -> bool:
        return self.changes.get("is_active") is False

    @property
    def edits(self) -> bool:
        return bool(set(self.changes) - {"is_active"})


@dataclass
class Plan:
    seen: int = 0
    updates: list[Update] = field(default_factory=list)
    creates: list[Create] = field(default_factory=list)
    gone: list[Profile] = field(default_factory=list)  # live, active, not in the pool
    unchanged: int = 0
    skipped_deleted: int = 0
    skipped_no_email: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)
    active: int = 0  # live active profiles before the run
    # Why nobody is taken for gone although some profiles are not in the pool, if so.
    no_deactivation_reason: str = ""


def _order(user: CognitoUser) -> tuple[datetime, str]:
    return (user.created or _EPOCH, user.sub)


def plan_sync(
    users: Iterable[CognitoUser | BadUser],
    profiles: Iterable[Profile],
    bad_emails: set[str] = frozenset(),  # type: ignore[assignment]
) -> Plan:
    """Plan the sync of `users` onto `profiles`; `bad_emails` fail the users_email_shape CHECK."""
    plan = Plan()
    by_sub = {p.sub: p for p in profiles}
    holders = {p.email.lower(): p.sub for p in by_sub.values() if not p.deleted}
    plan.active = sum(1 for p in by_sub.values() if p.is_active and not p.deleted)
    good: dict[str, CognitoUser] = {}
    seen_subs: set[str] = set()
    nameless = 0
    for user in users:
        plan.seen += 1
        if isinstance(user, BadUser):
            plan.invalid.append(f"Cognito user {user.label}: {user.reason}")
            seen_subs.add(user.sub)
            nameless += not user.sub
            continue
        if user.sub in seen_subs:
            plan.invalid.append(f"Cognito user {user.label}: the pool lists this sub twice")
            good.pop(user.sub, None)
            continue
        seen_subs.add(user.sub)
        if user.email and user.email in bad_emails:
            plan.invalid.append(
                f"Cognito user {user.label}: the email is not an address the users table "
                "accepts (one @, no spaces: users_email_shape)"
            )
            continue
        good[user.sub] = user

    existing = sorted((u for u in good.values() if u.sub in by_sub), key=lambda u: u.sub)
    new = sorted((u for u in good.values() if u.sub not in by_sub), key=_order)
    _plan_existing(plan, [(u, by_sub[u.sub]) for u in existing], holders)
    for user in new:
        _plan_new(plan, user, holders)

    if nameless:
        plan.no_deactivation_reason = (
            f"{nameless} Cognito user(s) without a sub: who is gone cannot be told"
        )
    else:
        plan.gone = sorted(
            (
                p
                for p in by_sub.values()
                if p.is_active and not p.deleted and p.sub not in seen_subs
            ),
            key=lambda p: p.sub,
        )
    return plan


def _plan_existing(
    plan: Plan, pairs: list[tuple[CognitoUser, Profile]], holders: dict[str, str]
) -> None:
    moves: list[tuple[CognitoUser, Profile, dict[str, Any]]] = []
    for user, profile in pairs:
        if profile.deleted:
            plan.skipped_deleted += 1  # deleted here on purpose: a sync does not resurrect
            continue
        wanted: dict[str, Any] = {"email_verified": user.email_verified, "display_name": user.name}
        if user.email:  # never blank a stored address because Cognito lacks one
            wanted["email"] = user.email
        if not user.enabled:
            wanted["is_active"] = False
        changes = {k: v for k, v in wanted.items() if getattr(profile, k) != v}
        if not changes:
            plan.unchanged += 1
        elif "email" in changes and user.email.lower() != profile.email.lower():
            moves.append((user, profile, changes))
        else:
            plan.updates.append(Update(profile.pk, user.sub, changes))
    # A new address may be free only once another profile has moved off it: take the
    # moves in rounds, each after the ones it waits for, so one run settles a chain.
    while moves:
        waiting = []
        for user, profile, changes in moves:
            if user.email.lower() in holders:
                waiting.append((user, profile, changes))
                continue
            holders.pop(profile.email.lower(), None)
            holders[user.email.lower()] = user.sub
            plan.updates.append(Update(profile.pk, user.sub, changes))
        if len(waiting) == len(moves):
            break
        moves = waiting
    for user, profile, changes in moves:
        # The rest still applies: a user disabled in Cognito is deactivated regardless.
        plan.conflicts.append(_conflict(user, holders[user.email.lower()]))
        del changes["email"]
        if changes:
            plan.updates.append(Update(profile.pk, user.sub, changes))


def _plan_new(plan: Plan, user: CognitoUser, holders: dict[str, str]) -> None:
    if not user.email:
        plan.skipped_no_email.append(user.sub)
        return
    holder = holders.get(user.email.lower())
    if holder is not None:
        plan.conflicts.append(_conflict(user, holder))
        return
    holders[user.email.lower()] = user.sub
    plan.creates.append(
        Create(user.sub, user.email, user.email_verified, user.name, is_active=user.enabled)
    )


def _conflict(user: CognitoUser, holder: str) -> str:
    return (
        f"Cognito user {user.label}: the email is already used, case-insensitively, by the "
        f"profile of Cognito user {holder}"
    )


def check_deactivations(plan: Plan, pool_id: str, limit_percent: int, *, allow: bool) -> None:
    """Refuse a plan that deactivates more profiles than the limit (before any change)."""
    gone = len(plan.gone)
    if allow or gone == 0:
        return
    limit = max(DEACTIVATION_FLOOR, plan.active * limit_percent // 100)
    if plan.seen == 0:
        why = f"Cognito pool {pool_id} lists no users at all"
    elif gone > limit:
        why = (
            f"that is more than COGNITO_DEACTIVATION_LIMIT_PERCENT={limit_percent}% of them "
            f"and more than {DEACTIVATION_FLOOR}"
        )
    else:
        return
    raise MassDeactivationRefused(
        f"refusing to deactivate {gone} of {plan.active} active profiles whose Cognito user "
        f"is gone: {why}. Nothing was changed. A wrong COGNITO_USER_POOL_ID or AWS_REGION "
        f"does this (pool {pool_id} lists {plan.seen} users): check them, or pass "
        "--allow-mass-deactivation if these users really were deleted."
    )
