"""`{% nav_app_list %}`: the sidebar's app list, rendered by dbops.adminsite.nav."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.safestring import SafeString

from dbops.adminsite.nav import app_list_html

register = template.Library()


@register.simple_tag(takes_context=True)
def nav_app_list(context: Any) -> SafeString:
    return app_list_html(context, context.get("available_apps"), show_changelinks=False)
