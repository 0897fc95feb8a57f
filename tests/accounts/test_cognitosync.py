"""`manage.py cognitosync` against moto's Cognito and the real test database (issue 7.4)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import StringIO
from typing import Any

import boto3
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from moto import mock_aws

from accounts import cognito
from accounts.models import UserProfile

REGION = "eu-west-1"


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, str]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("cognito-idp", region_name=REGION)
        pool_id = client.create_user_pool(PoolName="choregarden")["UserPool"]["Id"]
        yield client, pool_id


def add_user(client: Any, pool_id: str, username: str, email: str, name: str = "") -> str:
    attrs = [{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}]
    if name:
        attrs.append({"Name": "name", "Value": name})
    user = client.admin_create_user(UserPoolId=pool_id, Username=username, UserAttributes=attrs)
    return next(a["Value"] for a in user["User"]["Attributes"] if a["Name"] == "sub")


def run(pool_id: str, *args: str) -> dict[str, Any]:
    out = StringIO()
    call_command(
        "cognitosync", "--user-pool-id", pool_id, "--region", REGION, "--json", *args, stdout=out
    )
    return json.loads(out.getvalue())


@pytest.mark.django_db
def test_creates_updates_and_deactivates_by_sub(pool: tuple[Any, str]) -> None:
    client, pool_id = pool
    ann = add_user(client, pool_id, "ann", "ann@example.com", "Ann")
    bob = add_user(client, pool_id, "bob", "bob@example.com", "Bob")
    cid = add_user(client, pool_id, "cid", "cid@example.com", "Cid")

    summary = run(pool_id)
    assert (summary["seen"], summary["created"], summary["complete"]) == (3, 3, True)
    profile = UserProfile.objects.get(cognito_sub=ann)
    assert (profile.email, profile.email_verified, profile.display_name, profile.is_active) == (
        "ann@example.com",
        True,
        "Ann",
        True,
    )

    client.admin_update_user_attributes(
        UserPoolId=pool_id, Username="ann", UserAttributes=[{"Name": "name", "Value": "Ann B."}]
    )
    client.admin_disable_user(UserPoolId=pool_id, Username="bob")
    client.admin_delete_user(UserPoolId=pool_id, Username="cid")
    summary = run(pool_id)
    assert summary["updated"] == 1
    assert summary["deactivated"] == 2
    assert UserProfile.objects.get(cognito_sub=ann).display_name == "Ann B."
    assert UserProfile.objects.get(cognito_sub=bob).is_active is False
    assert UserProfile.objects.get(cognito_sub=cid).is_active is False

    again = run(pool_id)
    assert (again["created"], again["updated"], again["deactivated"]) == (0, 0, 0)
    assert again["unchanged"] == 2


@pytest.mark.django_db
def test_dry_run_changes_nothing(pool: tuple[Any, str]) -> None:
    client, pool_id = pool
    add_user(client, pool_id, "ann", "ann@example.com")
    summary = run(pool_id, "--dry-run")
    assert summary["created"] == 1 and summary["dry_run"] is True
    assert UserProfile.all_objects.count() == 0


@pytest.mark.django_db
def test_deleted_profiles_are_not_resurrected(pool: tuple[Any, str]) -> None:
    client, pool_id = pool
    sub = add_user(client, pool_id, "ann", "ann@example.com")
    run(pool_id)
    UserProfile.objects.get(cognito_sub=sub).soft_delete()
    summary = run(pool_id)
    assert summary["skipped_deleted"] == 1
    assert UserProfile.objects.filter(cognito_sub=sub).count() == 0


@pytest.mark.django_db
def test_an_interrupted_sync_deactivates_nobody_and_can_be_run_again(
    pool: tuple[Any, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, pool_id = pool
    subs = [add_user(client, pool_id, f"u{n}", f"u{n}@example.com") for n in range(5)]
    run(pool_id)  # all five exist and are active
    client.admin_update_user_attributes(
        UserPoolId=pool_id, Username="u4", UserAttributes=[{"Name": "name", "Value": "Four"}]
    )
    real_pages = cognito.pages

    def two_pages_then_crash(*args: Any, **kwargs: Any) -> Iterator[list[cognito.CognitoUser]]:
        for number, page in enumerate(real_pages(*args, **kwargs)):
            if number == 1:
                raise ConnectionError("network dropped")
            yield page

    monkeypatch.setattr(cognito, "pages", two_pages_then_crash)
    with pytest.raises(ConnectionError):
        run(pool_id, "--page-size", "2")
    # The pool was not read to the end: nobody may be taken for gone.
    assert UserProfile.objects.filter(is_active=True).count() == 5

    monkeypatch.setattr(cognito, "pages", real_pages)
    summary = run(pool_id, "--page-size", "2")
    assert summary["complete"] and summary["deactivated"] == 0
    assert {p.cognito_sub for p in UserProfile.objects.filter(is_active=True)} == set(subs)
    assert UserProfile.objects.get(cognito_sub=subs[4]).display_name == "Four"


@pytest.mark.django_db
def test_a_missing_pool_is_a_clear_error(pool: tuple[Any, str]) -> None:
    with pytest.raises(CommandError, match=r"eu-west-1_nope.*COGNITO_USER_POOL_ID"):
        run("eu-west-1_nope")


def test_without_a_pool_id_it_says_what_to_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COGNITO_USER_POOL_ID", raising=False)
    with pytest.raises(CommandError, match="COGNITO_USER_POOL_ID"):
        call_command("cognitosync", "--user-pool-id", "")


@pytest.mark.django_db
def test_duplicate_emails_are_reported_and_exit_non_zero(pool: tuple[Any, str]) -> None:
    client, pool_id = pool
    add_user(client, pool_id, "ann", "ann@example.com")
    add_user(client, pool_id, "ann2", "ANN@example.com")
    with pytest.raises(CommandError, match="could not be synced"):
        run(pool_id)
    assert UserProfile.objects.count() == 1  # the first one landed, nothing else was lost


@pytest.mark.django_db
def test_without_a_region_it_says_what_to_set(
    monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    settings.AWS_REGION = ""
    with pytest.raises(CommandError, match="AWS_REGION"):
        call_command("cognitosync", "--user-pool-id", "eu-west-1_x")
