"""Views for the router tests: a write, and a reporting read that can stop the replica."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import path

from dbops.connections.routers import reporting
from dbops.models import MigrationTest

# Set by a test: called between the view's two replica reads, on the first run only.
BETWEEN_READS: list = []


def write(request: HttpRequest) -> HttpResponse:
    MigrationTest.objects.create(name=request.POST["name"])
    return HttpResponse("written")


def names(request: HttpRequest) -> HttpResponse:
    with reporting():
        ours = MigrationTest.objects.filter(name__startswith="r-").order_by("name")
        first = list(ours.values_list("name", flat=True))
        while BETWEEN_READS:
            BETWEEN_READS.pop()()
        second = list(ours.values_list("name", flat=True))
    assert first == second
    return HttpResponse(",".join(second))


urlpatterns = [path("write/", write), path("names/", names)]
