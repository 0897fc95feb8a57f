"""The admin's navigation sidebar, rendered once per distinct app list.

Every admin page renders `admin/app_list.html` in its sidebar: on the 50-row profiles
changelist a tenth of the server's time (bench/load_bench.py), for HTML that is the same
on most pages. The app list itself is still built per request (`each_context`, with
the user's permissions, as Django does); only its rendering is remembered, keyed on
everything Django's template reads: each app's and model's label, name and links, the
view-only flag, whether the link is in the request's path (the "current" marks), the
language and `show_changelinks`. The same key therefore always renders the same HTML.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.template import Context
from django.template.defaultfilters import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language

TEMPLATE = "admin/app_list.html"
MAX_ENTRIES = 512  # distinct permission sets x current pages; emptied when full

_rendered: dict[tuple[Any, ...], SafeString] = {}


def enabled() -> bool:
    """ADMIN_NAV_MEMO (default on, never with DEBUG, whose templates may change on disk)."""
    return bool(getattr(settings, "ADMIN_NAV_MEMO", True)) and not settings.DEBUG


def _within(url: Any, path: str) -> bool:
    """The template's `url in request.path|urlencode`: False when url is missing."""
    try:
        return bool(url in path)
    except TypeError:
        return False


def key(app_list: Any, path: str, show_changelinks: bool) -> tuple[Any, ...]:
    """What app_list.html's output depends on."""
    apps = []
    for app in app_list or ():
        models = tuple(
            (
                str(model.get("object_name")),
                str(model.get("name")),
                model.get("admin_url"),
                model.get("add_url"),
                bool(model.get("view_only")),
                _within(model.get("admin_url"), path),
            )
            for model in app.get("models", ())
        )
        apps.append(
            (
                str(app.get("app_label")),
                str(app.get("name")),
                app.get("app_url"),
                _within(app.get("app_url"), path),
                models,
            )
        )
    return (get_language(), show_changelinks, tuple(apps))


def app_list_html(context: Context, app_list: Any, show_changelinks: bool) -> SafeString:
    """app_list.html for `app_list` in `context`, rendered once per distinct key."""
    request: HttpRequest | None = context.get("request")
    template = context.template.engine.get_template(TEMPLATE)  # type: ignore[union-attr]
    values = {"app_list": app_list, "show_changelinks": show_changelinks}
    if request is None or not enabled():
        with context.push(**values):
            return mark_safe(template.render(context))
    memo_key = key(app_list, urlencode(request.path), show_changelinks)
    html = _rendered.get(memo_key)
    if html is None:
        with context.push(**values):
            html = mark_safe(template.render(context))
        if len(_rendered) >= MAX_ENTRIES:
            _rendered.clear()
        _rendered[memo_key] = html
    return html
