"""Views that touch the database in one way each, for the fault tests' real server."""

from __future__ import annotations

import time
from collections.abc import Iterator

from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.template.response import TemplateResponse
from django.urls import path

handler500 = "dbops.web.dbtrouble.server_error"
HOLD_MARK = "fault-hold"


def rows(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM fault_rows")
        return HttpResponse(f"rows {cursor.fetchone()[0]}")


def write(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO fault_rows (note) VALUES (%s) RETURNING id", [request.GET["note"]]
        )
        return HttpResponse(f"wrote {cursor.fetchone()[0]}")


def sleep(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [float(request.GET["s"])])
    return HttpResponse("slept")


def hold(request: HttpRequest) -> HttpResponse:
    """Hold a pooled connection for a while without a query running (a slow request)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT '{HOLD_MARK}'")
    time.sleep(float(request.GET["s"]))
    return HttpResponse("held")


class LazyRows:
    """Rows read only when the template iterates them (while the response renders)."""

    def __iter__(self) -> Iterator[str]:
        with connection.cursor() as cursor:
            cursor.execute("SELECT note FROM fault_rows")
            yield from (row[0] for row in cursor.fetchall())


def render(request: HttpRequest) -> TemplateResponse:
    template = engines["django"].from_string("{% for note in rows %}{{ note }} {% endfor %}")
    return TemplateResponse(request, template, {"rows": LazyRows()})


def boom(request: HttpRequest) -> HttpResponse:
    raise ValueError("a bug, not the database")


def duplicate(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO fault_rows (id, note) VALUES (-1, 'x'), (-1, 'y')")
    return HttpResponse("inserted")


urlpatterns = [
    path("rows/", rows),
    path("write/", write),
    path("sleep/", sleep),
    path("hold/", hold),
    path("render/", render),
    path("boom/", boom),
    path("duplicate/", duplicate),
]
