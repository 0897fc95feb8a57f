"""Submit an admin form as a browser would: the page's own values, with some changed."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from django.contrib.auth.models import User
from django.test import RequestFactory

# Inputs a browser does not send as text fields (files are left out: no upload here).
SKIPPED_TYPES = {"submit", "button", "reset", "image", "file"}


class _FormParser(HTMLParser):
    """Collect the successful controls of one form, in document order."""

    def __init__(self, form_id: str) -> None:
        super().__init__(convert_charrefs=True)
        self.form_id = form_id
        self.inside = False
        self.pairs: list[tuple[str, str]] = []
        self._select: dict[str, Any] | None = None
        self._option: dict[str, Any] | None = None
        self._textarea: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("id") == self.form_id
            return
        if not self.inside or "disabled" in a:
            return
        name = a.get("name", "")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in SKIPPED_TYPES or (kind in ("checkbox", "radio") and "checked" not in a):
                return
            self.pairs.append((name, a.get("value", "on" if kind == "checkbox" else "")))
        elif tag == "select" and name:
            self._select = {"name": name, "multiple": "multiple" in a, "options": []}
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "selected": "selected" in a, "text": ""}
            self._select["options"].append(self._option)
        elif tag == "textarea" and name:
            self._textarea = (name, [])

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._textarea[1].append(data)
        elif self._option is not None:
            self._option["text"] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "textarea" and self._textarea is not None:
            name, parts = self._textarea
            # A browser drops the newline that follows <textarea>.
            self.pairs.append((name, "".join(parts).removeprefix("\n")))
            self._textarea = None
        elif tag == "select" and self._select is not None:
            options = self._select["options"]
            chosen = [o for o in options if o["selected"]]
            if not chosen and options and not self._select["multiple"]:
                chosen = options[:1]
            for option in chosen:
                value = option["value"] if option["value"] is not None else option["text"]
                self.pairs.append((self._select["name"], value))
            self._select = None
            self._option = None


def form_values(html: str, form_id: str) -> dict[str, list[str]]:
    """Return what submitting the form `form_id` of `html` would send, name -> values."""
    parser = _FormParser(form_id)
    parser.feed(html)
    values: dict[str, list[str]] = {}
    for name, value in parser.pairs:
        if "__prefix__" not in name:  # the template row inlines copy with JavaScript
            values.setdefault(name, []).append(value)
    return values


def admin_form_id(url: str) -> str:
    """The id Django's change form template gives the form of the model in `url`."""
    model_name = url.rstrip("/").split("/")[3]
    return f"{model_name}_form"


def submit(client: Any, url: str, changes: dict[str, Any] | None = None) -> Any:
    """Load the admin form at `url`, apply `changes` (None removes a field), post it."""
    page = client.get(url)
    assert page.status_code == 200, (url, page.status_code)
    data: dict[str, Any] = form_values(page.content.decode(), admin_form_id(url))
    for name, value in (changes or {}).items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return client.post(url, data)


def superuser_request() -> Any:
    """A request by an (unsaved) superuser, for asking a ModelAdmin what it allows."""
    request = RequestFactory().get("/admin/")
    request.user = User(username="probe", is_staff=True, is_superuser=True, is_active=True)
    return request
