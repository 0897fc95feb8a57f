"""`manage.py cognitosync` against moto's Cognito and the real test database (issues 7.4, 12)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from io import StringIO
from typing import Any

import boto3
import psycopg
import pytest
from botocore.stub import Stubber
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from moto.server import ThreadedMotoServer

from accounts import cognito
from accounts.cognito import cognito_client
from accounts.models import UserProfile
from accounts.sync import sync
from tests.helpers import REPO, run_manage

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


# --- The plan: what the dry run says is what the real run writes (issue 12.9) -------------


def profile_rows() -> dict[str, tuple[str, bool, str, bool, bool]]:
    return {
        p.cognito_sub: (p.email, p.email_verified, p.display_name, p.is_active, bool(p.deleted_at))
        for p in UserProfile.all_objects.all()
    }


def changes_between(
    before: dict[str, tuple[str, bool, str, bool, bool]],
    after: dict[str, tuple[str, bool, str, bool, bool]],
) -> dict[str, int]:
    """What the database shows was written: new rows, edited rows, deactivated rows."""
    edited = [s for s in before if s in after and before[s][:3] != after[s][:3]]
    deactivated = [s for s in before if s in after and before[s][3] and not after[s][3]]
    return {
        "created": len(set(after) - set(before)),
        "updated": len(edited),
        "deactivated": len(deactivated),
    }


@pytest.mark.django_db
def test_case_duplicate_emails_are_conflicts_in_the_dry_run_and_counts_match_the_rows(
    pool: tuple[Any, str],
) -> None:
    client, pool_id = pool
    UserProfile.objects.create(cognito_sub="stored-zoe", email="zoe@example.com")
    for n in range(8):
        add_user(client, pool_id, f"u{n}", f"u{n}@example.com")
    add_user(client, pool_id, "u3-again", "U3@Example.com")  # a duplicate within the pool
    add_user(client, pool_id, "zoe", "ZOE@example.com")  # one against a stored profile
    before = profile_rows()

    dry = sync(cognito_client(REGION), pool_id, dry_run=True)
    real = sync(cognito_client(REGION), pool_id)

    assert (dry.created, len(dry.conflicts)) == (8, 2)
    assert real.as_dict() == dry.as_dict()
    assert changes_between(before, profile_rows()) == {
        "created": real.created,
        "updated": real.updated,
        "deactivated": real.deactivated,
    }
    assert any("zoe@example.com" not in c and "stored-zoe" in c for c in real.conflicts)


people = st.lists(
    st.fixed_dictionaries(
        {
            "in_pool": st.booleans(),
            "email": st.sampled_from(
                [
                    "ann@example.com",
                    "ANN@example.com",
                    "bob@example.com",
                    "Bob@example.com",
                    "cid@example.com",
                    "dee@example.com",
                    None,
                ]
            ),
            "enabled": st.booleans(),
            "name": st.sampled_from(["", "Ann", "Bob"]),
            "profile": st.none()
            | st.fixed_dictionaries(
                {
                    "email": st.sampled_from(
                        ["ann@example.com", "bob@example.com", "cid@example.com", "eve@x.org"]
                    ),
                    "name": st.sampled_from(["", "Ann", "Old"]),
                    "active": st.booleans(),
                    "deleted": st.booleans(),
                }
            ),
        }
    ),
    min_size=1,
    max_size=7,
)


@pytest.mark.django_db
@settings(
    max_examples=20,
    deadline=None,
    derandomize=False,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=people)
def test_the_dry_run_reports_exactly_what_the_real_run_writes(
    pool: tuple[Any, str], people: list[dict[str, Any]]
) -> None:
    client, _ = pool
    UserProfile.all_objects.all().delete()
    pool_id = client.create_user_pool(PoolName="p")["UserPool"]["Id"]
    for n, person in enumerate(people):
        sub = f"gone-{n}"
        if person["in_pool"]:
            attrs = [{"Name": "name", "Value": person["name"]}] if person["name"] else []
            if person["email"]:
                attrs.append({"Name": "email", "Value": person["email"]})
            user = client.admin_create_user(
                UserPoolId=pool_id, Username=f"p{n}", UserAttributes=attrs
            )["User"]
            sub = next(a["Value"] for a in user["Attributes"] if a["Name"] == "sub")
            if not person["enabled"]:
                client.admin_disable_user(UserPoolId=pool_id, Username=f"p{n}")
        if profile := person["profile"]:
            with contextlib.suppress(IntegrityError), transaction.atomic():
                UserProfile.all_objects.create(
                    cognito_sub=sub,
                    email=profile["email"],
                    display_name=profile["name"],
                    is_active=profile["active"] and not profile["deleted"],
                    deleted_at=timezone.now() if profile["deleted"] else None,
                )
    before = profile_rows()

    dry = sync(client, pool_id, dry_run=True, allow_mass_deactivation=True)
    assert profile_rows() == before
    real = sync(client, pool_id, allow_mass_deactivation=True)

    assert real.as_dict() == dry.as_dict()
    assert changes_between(before, profile_rows()) == {
        "created": real.created,
        "updated": real.updated,
        "deactivated": real.deactivated,
    }
    again = sync(client, pool_id, allow_mass_deactivation=True)  # one run settles it all
    assert (again.created, again.updated, again.deactivated) == (0, 0, 0)
    assert again.conflicts == real.conflicts


# --- Pre-checks that refuse before the first change -------------------------------------


@pytest.mark.django_db
def test_deactivating_most_profiles_is_refused_before_any_change(pool: tuple[Any, str]) -> None:
    client, pool_id = pool
    for n in range(20):
        UserProfile.objects.create(cognito_sub=f"old-{n}", email=f"old{n}@example.com")
    add_user(client, pool_id, "new", "new@example.com")
    before = profile_rows()

    for args in ([], ["--dry-run"]):
        with pytest.raises(
            CommandError,
            match=r"refusing to deactivate 20 of 20 active profiles .*"
            r"COGNITO_DEACTIVATION_LIMIT_PERCENT=10% .* more than 10\. Nothing was changed",
        ):
            run(pool_id, *args)
        assert profile_rows() == before  # not even the new user was created

    summary = run(pool_id, "--allow-mass-deactivation")
    assert (summary["created"], summary["deactivated"]) == (1, 20)


@pytest.mark.django_db
def test_an_empty_pool_deactivates_nobody(pool: tuple[Any, str]) -> None:
    _client, pool_id = pool
    for n in range(3):
        UserProfile.objects.create(cognito_sub=f"old-{n}", email=f"old{n}@example.com")
    with pytest.raises(CommandError, match=r"pool .* lists no users at all"):
        run(pool_id)
    assert UserProfile.objects.filter(is_active=True).count() == 3


@pytest.mark.django_db
def test_a_small_share_is_deactivated_without_a_flag(pool: tuple[Any, str], settings: Any) -> None:
    client, pool_id = pool
    keep = [add_user(client, pool_id, f"u{n}", f"u{n}@example.com") for n in range(30)]
    run(pool_id)
    for n in range(12):
        UserProfile.objects.create(cognito_sub=f"gone-{n}", email=f"gone{n}@example.com")
    settings.COGNITO_DEACTIVATION_LIMIT_PERCENT = 50  # 12 of 42 is within 50%
    assert run(pool_id)["deactivated"] == 12
    assert UserProfile.objects.filter(is_active=True).count() == len(keep)


# --- Cognito data: missing or malformed attributes are reported, never defaulted ---------


def test_users_with_missing_or_malformed_attributes_are_bad_users() -> None:
    def entry(*attrs: tuple[str, str], enabled: Any = True) -> dict[str, Any]:
        user: dict[str, Any] = {
            "Username": "u",
            "Attributes": [{"Name": n, "Value": v} for n, v in attrs],
        }
        if enabled is not None:
            user["Enabled"] = enabled
        return user

    ok = cognito.parse_user(
        entry(("sub", "s1"), ("email", " a@x.org "), ("email_verified", "True"))
    )
    assert isinstance(ok, cognito.CognitoUser) and (ok.email, ok.email_verified) == (
        "a@x.org",
        True,
    )
    cases = {
        "the sub attribute is missing": entry(("email", "a@x.org")),
        "longer than 64": entry(("sub", "s" * 65)),
        "longer than 254": entry(("sub", "s2"), ("email", "a" * 250 + "@x.org")),
        "email_verified is 'yes'": entry(("sub", "s3"), ("email_verified", "yes")),
        "Enabled flag is missing": entry(("sub", "s4"), enabled=None),
    }
    for reason, user in cases.items():
        bad = cognito.parse_user(user)
        assert isinstance(bad, cognito.BadUser) and reason in bad.reason, (reason, bad)


def raw_user(username: str, **attrs: str) -> dict[str, Any]:
    """A `list_users` entry as Cognito sends it."""
    return {
        "Username": username,
        "Enabled": True,
        "Attributes": [{"Name": name, "Value": value} for name, value in attrs.items()],
    }


@pytest.mark.django_db
def test_malformed_users_are_reported_and_a_missing_sub_stops_deactivation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    UserProfile.objects.create(cognito_sub="ann-sub", email="ann@example.com")
    UserProfile.objects.create(cognito_sub="gone-sub", email="gone@example.com")
    client = boto3.client(
        "cognito-idp", region_name=REGION, aws_access_key_id="x", aws_secret_access_key="x"
    )
    users = [
        raw_user("ann", sub="ann-sub", email="ann@example.com"),
        raw_user("spaced", sub="s-2", email="a b@example.com"),
        raw_user("nosub", email="n@example.com"),
    ]
    with Stubber(client) as stub:
        stub.add_response(
            "list_users", {"Users": users}, {"UserPoolId": "eu-west-1_x", "Limit": 60}
        )
        monkeypatch.setattr(
            "accounts.management.commands.cognitosync.cognito_client", lambda r: client
        )
        err = StringIO()
        with pytest.raises(CommandError, match="2 Cognito users could not be synced"):
            call_command(
                "cognitosync", "--user-pool-id", "eu-west-1_x", stdout=StringIO(), stderr=err
            )
    report = err.getvalue()
    assert "invalid: Cognito user s-2 (a b@example.com): the email is not an address" in report
    assert "invalid: Cognito user nosub: the sub attribute is missing" in report
    assert "deactivated nobody: 1 Cognito user(s) without a sub" in report
    assert UserProfile.objects.get(cognito_sub="gone-sub").is_active  # not taken for gone
    assert not UserProfile.objects.filter(cognito_sub="s-2").exists()


# --- kill -9 of the real `manage.py cognitosync` midway -----------------------------------


@pytest.fixture
def served_pool(manage_env: dict[str, str]) -> Iterator[tuple[Any, str, dict[str, str]]]:
    """moto's Cognito as an HTTP server, so that a `manage.py` subprocess reaches it too."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        keys = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
        client = boto3.client(
            "cognito-idp",
            region_name=REGION,
            endpoint_url=f"http://{host}:{port}",
            **{k.lower(): v for k, v in keys.items()},
        )
        pool_id = client.create_user_pool(PoolName="choregarden")["UserPool"]["Id"]
        env = dict(
            manage_env, **keys, AWS_REGION=REGION, AWS_ENDPOINT_URL=f"http://{host}:{port}",
            COGNITO_USER_POOL_ID=pool_id,
        )  # fmt: skip
        yield client, pool_id, env
    finally:
        server.stop()


def wait_for(condition: Any, what: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 60  # a bound against hanging, not a timing test
    while time.monotonic() < deadline:
        if condition():
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    pytest.fail(f"never happened: {what}")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("phase", ["updates", "deactivations"])
def test_a_sync_killed_midway_loses_nothing_and_running_it_again_finishes(
    served_pool: tuple[Any, str, dict[str, str]], pg_server: Any, phase: str
) -> None:
    client, pool_id, env = served_pool
    subs = [add_user(client, pool_id, f"u{n}", f"u{n}@example.com", f"User {n}") for n in range(6)]
    for n, sub in enumerate(subs):
        name = "Old name" if phase == "updates" else f"User {n}"
        UserProfile.objects.create(
            cognito_sub=sub, email=f"u{n}@example.com", email_verified=True, display_name=name
        )
    if phase == "updates":
        touched = sorted(subs)  # the order the run writes them in

        def done(row: tuple[Any, ...], sub: str) -> bool:
            return row[2] == f"User {subs.index(sub)}"
    else:
        touched = [f"gone-{n}" for n in range(6)]
        for sub in touched:
            UserProfile.objects.create(cognito_sub=sub, email=f"{sub}@example.com")

        def done(row: tuple[Any, ...], sub: str) -> bool:
            return not row[3]

    before = profile_rows()
    dbname = connection.settings_dict["NAME"]
    with psycopg.connect(**pg_server.conninfo(dbname, role="app")) as locker:
        # The third profile (the second batch of two) is locked: the run waits there.
        locker.execute("SELECT 1 FROM users WHERE cognito_sub = %s FOR UPDATE", [touched[2]])
        proc = subprocess.Popen(
            [sys.executable, str(REPO / "manage.py"), "cognitosync", "--batch-size", "2"],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        try:
            with psycopg.connect(**pg_server.conninfo(dbname), autocommit=True) as probe:

                def first_batch_committed_and_second_waits() -> bool:
                    rows = profile_rows()
                    waiting = probe.execute(
                        "SELECT count(*) FROM pg_locks WHERE NOT granted"
                    ).fetchone()
                    return all(done(rows[s], s) for s in touched[:2]) and waiting[0] > 0

                wait_for(first_batch_committed_and_second_waits, "a batch committed", proc)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.communicate()
        locker.rollback()

    killed = profile_rows()
    assert set(killed) == set(before)  # no row lost, none added
    changed = {s for s in before if killed[s] != before[s]}
    assert changed == set(touched[:2])  # whole batches only
    assert all(done(killed[s], s) for s in changed)

    again = run_manage("cognitosync", "--json", env=env)
    assert again.returncode == 0, again.stderr
    summary = json.loads(again.stdout)
    field = "updated" if phase == "updates" else "deactivated"
    assert summary[field] == 4 and summary["conflicts"] == []
    final = profile_rows()
    assert all(done(final[s], s) for s in touched)
    assert {s for s in before if final[s] != before[s]} == set(touched)


# --- Exit codes: each failure is status 1 and one line, a usage error 2 ------------


@pytest.mark.django_db(transaction=True)
def test_each_failure_exits_1_with_one_line(served_pool: tuple[Any, str, dict[str, str]]) -> None:
    client, pool_id, env = served_pool
    for n in range(12):
        UserProfile.objects.create(cognito_sub=f"old-{n}", email=f"old{n}@example.com")
    add_user(client, pool_id, "ann", "ann@example.com")
    add_user(client, pool_id, "ann2", "ANN@example.com")
    failures = {
        "refusing to deactivate 12 of 12": ["cognitosync"],
        "lists no users at all": ["cognitosync", "--user-pool-id", "eu-west-1_empty"],
        "1 Cognito users could not be synced": ["cognitosync", "--allow-mass-deactivation"],
    }
    empty = client.create_user_pool(PoolName="empty")["UserPool"]["Id"]
    for message, argv in failures.items():
        argv = [a.replace("eu-west-1_empty", empty) for a in argv]
        done = run_manage(*argv, env=env)
        assert done.returncode == 1, (argv, done.stdout, done.stderr)
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("CommandError: ") and message in last, (argv, done.stderr)
    # A bad argument is a usage error (exit 2) before anything is read.
    usages = {
        "--batch-size: 0 is not at least 1": ["cognitosync", "--batch-size", "0"],
        "--page-size: 61 is not between 1 and 60": ["cognitosync", "--page-size", "61"],
        "unrecognized arguments: --no-such-option": ["cognitosync", "--no-such-option"],
    }
    for message, argv in usages.items():
        usage = run_manage(*argv, env=env)
        assert usage.returncode == 2 and message in usage.stderr, (argv, usage.stderr)
