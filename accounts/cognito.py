"""Read the Cognito user pool: every user, checked, a page at a time (issue 7.4).

A user whose attributes cannot be taken as they are (no `sub`, a `sub` longer than the
column, an `email_verified` that is neither true nor false, no `Enabled` flag) comes back
as a `BadUser` with the reason, never with a value made up for what is missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

SUB_MAX = 64  # users.cognito_sub
EMAIL_MAX = 254  # users.email
NAME_MAX = 100  # users.display_name: longer names are cut, as the admin form does


class CognitoSyncError(RuntimeError):
    """The pool could not be read, or the sync refused: says which pool and what to check."""


@dataclass(frozen=True)
class CognitoUser:
    sub: str
    username: str
    email: str  # "" when the user has none
    email_verified: bool
    name: str
    enabled: bool
    created: datetime | None = None

    @property
    def label(self) -> str:
        return f"{self.sub} ({self.email})" if self.email else self.sub


@dataclass(frozen=True)
class BadUser:
    """A pool entry whose attributes are missing or malformed: reported, never synced."""

    username: str
    sub: str  # "" when the sub itself is missing
    reason: str

    @property
    def label(self) -> str:
        return f"{self.sub} (user name {self.username})" if self.sub else self.username


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_user(user: dict[str, Any]) -> CognitoUser | BadUser:
    """Check one `list_users` entry; return the user, or what is wrong with it."""
    username = _text(user.get("Username")) or "?"
    attrs: dict[str, str] = {}
    for attr in user.get("Attributes") or []:
        name, value = attr.get("Name"), attr.get("Value", "")
        if not isinstance(name, str) or not isinstance(value, str):
            return BadUser(username, "", f"attribute {attr!r} is not a name and a text value")
        attrs[name] = value
    sub = attrs.get("sub", "").strip()
    if not sub:
        return BadUser(username, "", "the sub attribute is missing")
    if len(sub) > SUB_MAX:
        return BadUser(username, sub[:SUB_MAX], f"the sub is longer than {SUB_MAX} characters")
    email = attrs.get("email", "").strip()
    if len(email) > EMAIL_MAX:
        return BadUser(username, sub, f"the email is longer than {EMAIL_MAX} characters")
    verified = attrs.get("email_verified", "false").strip().lower()
    if verified not in ("true", "false"):
        return BadUser(
            username, sub, f"email_verified is {attrs['email_verified']!r}, not true or false"
        )
    enabled = user.get("Enabled")
    if not isinstance(enabled, bool):
        return BadUser(username, sub, "the Enabled flag is missing")
    name = (
        attrs.get("name")
        or attrs.get("preferred_username")
        or " ".join(p for p in (attrs.get("given_name"), attrs.get("family_name")) if p)
    )
    created = user.get("UserCreateDate")
    return CognitoUser(
        sub=sub,
        username=username,
        email=email,
        email_verified=verified == "true",
        name=name.strip()[:NAME_MAX],
        enabled=enabled,
        created=created if isinstance(created, datetime) else None,
    )


def cognito_client(region: str | None = None) -> Any:
    try:
        return boto3.client("cognito-idp", region_name=region or None)
    except BotoCoreError as err:
        raise CognitoSyncError(
            f"cannot set up the Cognito client: {err}; set AWS_REGION (or pass --region)"
        ) from err


def pages(client: Any, pool_id: str, page_size: int = 60) -> Iterator[list[CognitoUser | BadUser]]:
    """Yield the pool's users a page at a time (list_users allows at most 60 per call)."""
    paginator = client.get_paginator("list_users")
    try:
        for page in paginator.paginate(
            UserPoolId=pool_id, PaginationConfig={"PageSize": page_size}
        ):
            yield [parse_user(u) for u in page.get("Users", [])]
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
