"""URL routes: the admin site is the product's face for staff, at ADMIN_URL."""

from django.conf import settings
from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

# The database's trouble is a 503 with Retry-After wherever it is raised (dbops.web.dbtrouble).
handler500 = "dbops.web.dbtrouble.server_error"

urlpatterns = [
    path("", RedirectView.as_view(url=f"/{settings.ADMIN_URL}", permanent=False)),
    path(settings.ADMIN_URL, admin.site.urls),
]
