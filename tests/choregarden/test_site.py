"""The site answers: the admin login page renders against the real database."""

from __future__ import annotations

import pytest
from django.test import Client


@pytest.mark.django_db
def test_admin_answers_with_the_login_page(client: Client) -> None:
    response = client.get("/admin/", follow=True)
    assert response.status_code == 200
    assert response.redirect_chain[-1][0].startswith("/admin/login/")
    assert b'name="username"' in response.content
    assert b'<a href="/admin/">Chore Garden admin</a>' in response.content  # the header


@pytest.mark.django_db
def test_staff_can_sign_in(client: Client, django_user_model: type) -> None:
    django_user_model.objects.create_superuser("alice", "alice@example.com", "correct-horse-9")
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": "alice", "password": "correct-horse-9"},
        follow=True,
    )
    assert response.status_code == 200
    assert b"<title>Dashboard | Chore Garden admin</title>" in response.content
    assert b'id="dashboard"' in response.content


@pytest.mark.django_db
def test_the_database_connection_is_encrypted_when_the_server_offers_ssl() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        (ssl,) = cursor.fetchone()
    sslmode = connection.settings_dict["OPTIONS"].get("sslmode")
    assert ssl is (sslmode not in ("disable", "allow"))
