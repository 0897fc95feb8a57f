"""Sync user profiles from the Cognito user pool (issue 7.4).

The pool is read page by page with boto3's `list_users` paginator. Each page is applied in
one transaction, creating or updating profiles by `sub`, so an interrupted run leaves every
finished page applied and nothing half-written; running it again continues the job.
Profiles are deactivated only after the whole pool was read: a run that stops midway has
not seen every user, so it cannot tell who is gone, and it deactivates nobody.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError
from django.db import IntegrityError, transaction

from accounts.models import UserProfile


class CognitoSyncError(RuntimeError):
    """The pool could not be read: says which pool and what to check."""


@dataclass
class CognitoUser:
    sub: str
    email: str
    email_verified: bool
    name: str
    enabled: bool
    status: str

    @classmethod
    def from_api(cls, user: dict[str, Any]) -> CognitoUser:
        attrs = {a["Name"]: a.get("Value", "") for a in user.get("Attributes", [])}
        name = (
            attrs.get("name")
            or attrs.get("preferred_username")
            or " ".join(p for p in (attrs.get("given_name"), attrs.get("family_name")) if p)
        )
        return cls(
            sub=attrs.get("sub") or user["Username"],
            email=(attrs.get("email") or "").strip(),
            email_verified=attrs.get("email_verified", "false").lower() == "true",
            name=name[:100],
            enabled=bool(user.get("Enabled", True)),
            status=user.get("UserStatus", ""),
        )


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
    complete: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cognito_client(region: str | None = None) -> Any:
    try:
        return boto3.client("cognito-idp", region_name=region or None)
    except BotoCoreError as err:
        raise CognitoSyncError(
            f"cannot set up the Cognito client: {err}; set AWS_REGION (or pass --region)"
        ) from err


def pages(client: Any, pool_id: str, page_size: int = 60) -> Iterator[list[CognitoUser]]:
    """Yield the pool's users a page at a time (list_users allows at most 60 per call)."""
    paginator = client.get_paginator("list_users")
    try:
        for page in paginator.paginate(
            UserPoolId=pool_id, PaginationConfig={"PageSize": page_size}
        ):
            yield [CognitoUser.from_api(u) for u in page.get("Users", [])]
    except ClientError as err:
        code = err.response.get("Error", {}).get("Code", "")
        message = err.response.get("Error", {}).get("Message", "")
        hint = {
            "ResourceNotFoundException": "check COGNITO_USER_POOL_ID and AWS_REGION",
            "AccessDeniedException": "the role needs cognito-idp:ListUsers on this pool",
        }.get(code, "check the pool id, region and credentials")
        raise CognitoSyncError(
            f"could not list users of Cognito pool {pool_id}: {code}: {message}; {hint}"
        ) from err
    except BotoCoreError as err:
        raise CognitoSyncError(
            f"could not reach Cognito for pool {pool_id}: {err}; check AWS_REGION and network"
        ) from err


def _apply(user: CognitoUser, summary: SyncSummary, dry_run: bool) -> None:
    profile = UserProfile.all_objects.filter(cognito_sub=user.sub).first()
    if profile is not None and profile.deleted_at is not None:
        summary.skipped_deleted += 1  # deleted here on purpose: a sync does not resurrect
        return
    wanted = {"email": user.email, "email_verified": user.email_verified, "display_name": user.name}
    if not user.enabled:
        wanted["is_active"] = False
    if profile is None:
        if not user.email:
            summary.skipped_no_email += 1
            return
        summary.created += 1
        if not dry_run:
            UserProfile.all_objects.create(cognito_sub=user.sub, is_active=user.enabled, **wanted)
        return
    changed = [name for name, value in wanted.items() if getattr(profile, name) != value]
    if not user.email and "email" in changed:
        changed.remove("email")  # never blank a stored address because Cognito lacks one
    if not changed:
        summary.unchanged += 1
        return
    if "is_active" in changed:
        summary.deactivated += 1  # disabled in Cognito
    if set(changed) - {"is_active"}:
        summary.updated += 1
    if not dry_run:
        for name in changed:
            setattr(profile, name, wanted[name])
        profile.save(update_fields=changed)


def sync(
    client: Any,
    pool_id: str,
    *,
    dry_run: bool = False,
    page_size: int = 60,
    progress: Callable[[int, int], None] | None = None,
) -> SyncSummary:
    """Create/update profiles from the pool; then deactivate those whose user is gone."""
    summary = SyncSummary()
    seen: set[str] = set()
    for number, users in enumerate(pages(client, pool_id, page_size), start=1):
        with transaction.atomic():
            for user in users:
                seen.add(user.sub)
                summary.seen += 1
                try:
                    with transaction.atomic():
                        _apply(user, summary, dry_run)
                except IntegrityError as err:
                    summary.conflicts.append(
                        f"Cognito user {user.sub} ({user.email}): {str(err).splitlines()[0]}"
                    )
            if dry_run:
                transaction.set_rollback(True)
        if progress is not None:
            progress(number, summary.seen)
    # Compared in Python, in batches: an IN list of every sub in a large pool is no query.
    live = UserProfile.all_objects.filter(is_active=True, deleted_at__isnull=True)
    gone = [pk for pk, sub in live.values_list("pk", "cognito_sub").iterator() if sub not in seen]
    summary.deactivated += len(gone)
    if not dry_run:
        for start in range(0, len(gone), 1000):
            UserProfile.all_objects.filter(pk__in=gone[start : start + 1000]).update(
                is_active=False
            )
    summary.complete = True
    return summary
