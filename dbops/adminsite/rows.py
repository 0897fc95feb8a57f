"""The changelist's rows, rendered with the per-column work done once per page.

Django's `items_for_result` decides everything per cell: it looks the column up again
(lookup_field), asks for the empty-value text, builds the CSS class, reverses the change
URL and re-applies the preserved filters for every row, and renders each boolean icon
through `static()`. On a 50-row, 10-column page that was over half the server's time
(bench/load_bench.py). Here a column's field, method, empty text, class and link are
looked up once, the change URL is reversed once with a marker in place of the key, and
each boolean column renders its three icons once, and the date-time columns share one
formatter per page (dbops.adminsite.datetimes); every other value is still displayed by
Django's own display_for_field / display_for_value, so the HTML is Django's, byte for
byte (tests/dbops/adminsite/test_rows.py compares them). Pages this does not cover (editable
lists, popups, columns that are model properties or lookups) use Django's code.
"""

from __future__ import annotations

import datetime
import html
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.contrib.admin.templatetags import admin_list
from django.contrib.admin.templatetags.admin_urls import add_preserved_filters
from django.contrib.admin.utils import display_for_field, display_for_value, quote
from django.core.exceptions import FieldDoesNotExist, ObjectDoesNotExist
from django.db import models
from django.urls import NoReverseMatch
from django.utils.functional import Promise
from django.utils.html import escape
from django.utils.safestring import SafeString

from dbops.adminsite.datetimes import LocalDateTimes

# A key made only of these comes out of admin's quote() and reverse() unchanged.
_PLAIN_KEY = re.compile(r"[A-Za-z0-9-]+")


def enabled() -> bool:
    """ADMIN_FAST_ROWS (default on); off, every page uses Django's items_for_result."""
    return bool(getattr(settings, "ADMIN_FAST_ROWS", True))


@dataclass
class Column:
    """What one list_display entry needs, decided once per page."""

    name: str
    css: str  # "field-email", or "action-checkbox"
    empty: str
    link: bool
    model_field: Any = None  # the model field, when the column is one
    method: Callable[[Any], Any] | None = None  # a ModelAdmin method otherwise
    boolean: bool = False
    nowrap: bool = False  # a date, time or foreign key field: always "nowrap"
    icons: dict[Any, str] = field(default_factory=dict)  # a boolean column's rendered values
    kind: str = ""  # "text" or "datetime": display_for_field's branch, decided once
    dates: LocalDateTimes | None = None  # a "datetime" column's formatter, one per page


# Fields display_for_field shows as the string itself ("text") or as the localised local
# time ("datetime") when they have no choices: exactly these classes, not subclasses
# such as URLField, whose display differs.
_TEXT_FIELDS = (models.CharField, models.EmailField, models.SlugField, models.TextField)


def _column(cl: Any, index: int, name: Any, link: bool) -> Column | None:
    """Plan one column, or None when only Django's lookup_field would get it right."""
    model_admin = cl.model_admin
    empty = model_admin.get_empty_value_display()
    css = f"field-{admin_list._coerce_field_name(name, index)}"
    if not isinstance(name, str):
        return None
    try:
        f = cl.lookup_opts.get_field(name)
    except FieldDoesNotExist:
        f = None
    if f is not None:
        if f.is_relation and not (
            (f.many_to_one or f.one_to_one) and f.related_model and f.attname != name
        ):
            return None  # reverse, generic, many-to-many, or `<fk>_id`: lookup_field's
        if f.auto_created:
            return None
        nowrap = isinstance(f, (models.DateField, models.TimeField, models.ForeignKey))
        kind = ""
        if not f.flatchoices:
            if type(f) in _TEXT_FIELDS:
                kind = "text"
            elif type(f) is models.DateTimeField:
                kind = "datetime"
        return Column(name, css, empty, link, model_field=f, nowrap=nowrap, kind=kind)
    if name == "__str__" or not hasattr(model_admin, name):
        return None  # a model attribute or a lookup: lookup_field's other branches
    method = getattr(model_admin, name)
    if not callable(method):
        return None
    return Column(
        name,
        "action-checkbox" if name == "action_checkbox" else css,
        getattr(method, "empty_value_display", empty),
        link,
        method=method,
        boolean=getattr(method, "boolean", False),
    )


def plan(cl: Any) -> list[Column] | None:
    """Return the page's columns, or None when the page needs Django's own rendering."""
    if cl.formset is not None or cl.is_popup or cl.list_display_links is None:
        return None
    columns = []
    first = True
    for index, name in enumerate(cl.list_display):
        link = (first and not cl.list_display_links) or name in cl.list_display_links
        column = _column(cl, index, name, link)
        if column is None:
            return None
        first = first and not link
        columns.append(column)
    # One date-time formatter for the page: its columns share the days and times they show.
    dated = [column for column in columns if column.kind == "datetime"]
    dates = LocalDateTimes() if dated else None
    for column in dated:
        column.dates = dates
    return columns


class ChangeUrl:
    """The change view's URL for a key, reversed once per page (with the preserved filters)."""

    def __init__(self, cl: Any) -> None:
        self.cl = cl
        self.marker = uuid.uuid4().hex
        context = {"preserved_filters": cl.preserved_filters, "opts": cl.opts}
        try:
            url = cl.url_for_result(_Keyed(cl.pk_attname, self.marker))
        except NoReverseMatch:
            self.template = None
        else:
            self.template = escape(add_preserved_filters(context, url))
        self.context = context

    def escaped(self, result: Any) -> str | None:
        """The URL for `result`, HTML-escaped; None when there is none (NoReverseMatch)."""
        key = str(quote(getattr(result, self.cl.pk_attname)))
        if self.template is not None and _PLAIN_KEY.fullmatch(key):
            return self.template.replace(self.marker, key)
        try:
            url = self.cl.url_for_result(result)
        except NoReverseMatch:
            return None
        return escape(add_preserved_filters(self.context, url))


@dataclass
class _Keyed:
    """Stands in for a row when reversing the change URL: only its key is read."""

    attname: str
    key: str

    def __getattr__(self, name: str) -> Any:
        if name == self.__dict__["attname"]:
            return self.__dict__["key"]
        raise AttributeError(name)


def _value_html(column: Column, result: Any) -> tuple[Any, bool]:
    """Return the displayed value of one cell and whether it is a date or time."""
    try:
        value = getattr(result, column.name) if column.method is None else column.method(result)
    except ObjectDoesNotExist:
        return column.empty, False
    if isinstance(value, str) and value.strip() == "":
        value = ""
    f = column.model_field
    if f is not None:
        if isinstance(f.remote_field, models.ManyToOneRel):  # a foreign key: the object
            return (column.empty if value is None else value), False
        if isinstance(f, models.BooleanField) and not f.flatchoices:
            if value not in column.icons:
                column.icons[value] = display_for_field(value, f, column.empty)
            return column.icons[value], False
        if column.kind == "text" and type(value) is str:
            return (value or column.empty), False  # "" is the field's one empty str value
        if column.dates is not None and type(value) is datetime.datetime:
            return column.dates.text(value), False
        if column.kind == "datetime" and value is None:
            return column.empty, False
        return display_for_field(value, f, column.empty, avoid_link=column.link), False
    dated = isinstance(value, (datetime.date, datetime.time))
    if column.boolean:
        if value not in column.icons:
            column.icons[value] = display_for_value(value, column.empty, True)
        return column.icons[value], dated
    return display_for_value(value, column.empty, False), dated


def _html(value: Any) -> str:
    """Django's conditional_escape, without its lazy-argument wrapper per cell."""
    if isinstance(value, Promise):
        value = str(value)
    if hasattr(value, "__html__"):
        return str(value.__html__())
    return html.escape(str(value))


def row(columns: list[Column], urls: ChangeUrl, result: Any) -> list[SafeString]:
    """One row's cells, as Django's items_for_result renders them."""
    # SafeString(...) is what mark_safe returns for a str, without its lazy-argument check.
    cells = []
    first = True
    for column in columns:
        shown, dated = _value_html(column, result)
        css = column.css + (" nowrap" if column.nowrap or dated else "")
        if column.link:
            tag = "th" if first else "td"
            first = False
            url = urls.escaped(result)
            inner = _html(shown) if url is None else f'<a href="{url}">{_html(shown)}</a>'
            cells.append(SafeString(f'<{tag} class="{css}">{inner}</{tag}>'))
        else:
            cells.append(SafeString(f'<td class="{css}">{_html(shown)}</td>'))
    return cells


def results(cl: Any) -> Iterator[Any]:
    """The page's rows for change_list_results.html: ours when planned, else Django's."""
    columns = plan(cl) if enabled() else None
    if columns is None:
        yield from admin_list.results(cl)
        return
    urls = ChangeUrl(cl)
    for result in cl.result_list:
        yield admin_list.ResultList(None, row(columns, urls, result))


def result_list(cl: Any) -> dict[str, Any]:
    """Django's result_list context, with the rows from `results`."""
    headers = list(admin_list.result_headers(cl))
    rows = list(results(cl))
    if enabled() and cl.formset is None:
        # The template writes a row's cells with nothing between them: one string per row
        # is the same <tr>, for a tenth of the template's loop (550 variables a page).
        rows = [admin_list.ResultList(None, [SafeString("".join(r))]) for r in rows]
    return {
        "cl": cl,
        "result_hidden_fields": list(admin_list.result_hidden_fields(cl)),
        "result_headers": headers,
        "num_sorted_fields": sum(1 for h in headers if h["sortable"] and h["sorted"]),
        "results": rows,
    }
