"""URLs for bench/pool_bench.py: the project's own, plus a small read of a few rows."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, JsonResponse
from django.urls import path

from choregarden.urls import urlpatterns as project_urls


def few_users(request: HttpRequest) -> JsonResponse:
    """An API-style read: five rows by primary key order, as JSON."""
    users = get_user_model().objects.order_by("id").values("id", "username")[:5]
    return JsonResponse({"users": list(users)})


urlpatterns = [path("bench/users/", few_users), *project_urls]
