"""The admin's app config: Django's, with the project's admin site as the default site."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AdminConfig(DjangoAdminConfig):
    default_site = "dbops.adminsite.site.AdminSite"
