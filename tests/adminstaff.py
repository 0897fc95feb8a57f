"""Staff users with exactly the permissions a test names, and what a request wrote."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client


def staff_user(username: str, *permissions: str) -> User:
    """An active staff user (not a superuser) holding exactly `permissions` ("app.codename")."""
    user = User.objects.create_user(username, is_staff=True)
    for label in permissions:
        app_label, codename = label.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return user


def client_for(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows_written() -> int:
    """Rows this transaction has inserted, updated or deleted so far, in every table."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) "
            "FROM pg_stat_xact_all_tables"
        )
        return int(cursor.fetchone()[0])


def action_choices(page: Any) -> set[str]:
    """The action names a changelist offers (its action select's options)."""
    html = page.content.decode()
    start = html.find('name="action"')
    if start < 0:
        return set()
    select = html[start : html.find("</select>", start)]
    return {part.split('"', 1)[0] for part in select.split('value="')[1:]} - {""}
