"""URL routes: the admin site is the product's face for staff, at ADMIN_URL."""

from django.conf import settings
from django.contrib import admin
from django.urls import path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url=f"/{settings.ADMIN_URL}", permanent=False)),
    path(settings.ADMIN_URL, admin.site.urls),
]
