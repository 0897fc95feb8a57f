"""Django's error reports (the DEBUG error page, error e-mails) with every secret masked.

Django hides settings by name only (API, TOKEN, KEY, SECRET, PASS, ...), and only when
DEBUG is off; `DATABASE_URL` carries a password under a name it does not hide, and the
page shows every frame's local variables (a `conninfo` string, a connection's keywords).
These classes also mask, whatever DEBUG says: absolute URLs under names ending in URL,
values by shape (URL passwords, `password=...`) and by value (the configured and
registered secrets, see sqlmigrations.redact), in settings, request data, locals and messages.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from django.template.defaultfilters import pprint
from django.utils.datastructures import MultiValueDict
from django.utils.html import escape
from django.views.debug import ExceptionReporter, SafeExceptionReporterFilter

from sqlmigrations.redact import MASK, configured_secrets, redact, secret_forms

# Django's names, plus the libpq and boto vocabulary for connection strings and keys.
HIDDEN_NAMES = re.compile(
    "API|AUTH|TOKEN|KEY|SECRET|PASS|SIGNATURE|HTTP_COOKIE|CONNINFO|DSN|CREDENTIAL", re.I
)
URL_NAME = re.compile(r"URL$|URI$", re.I)


def absolute_url(name: object, value: object) -> bool:
    """Tell whether a setting is an absolute URL: it may hold a password, a token, a key."""
    return (
        isinstance(name, str)
        and URL_NAME.search(name) is not None
        and isinstance(value, str)
        and "://" in value
    )


class Shown:
    """A value already rendered and masked: the page prints its text as it is."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text


class SecretsExceptionReporterFilter(SafeExceptionReporterFilter):
    """Mask secrets by name, by shape and by value, with DEBUG on or off."""

    hidden_settings = HIDDEN_NAMES

    def is_active(self, request: HttpRequest | None) -> bool:
        # The development page is read over shoulders and pasted into chats: it masks too,
        # and so honours @sensitive_variables / @sensitive_post_parameters (admin sign-in).
        return True

    def hidden(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.hidden_settings.search(name))

    def cleanse_setting(self, key: Any, value: Any) -> Any:
        if absolute_url(key, value):
            return self.cleansed_substitute
        cleansed = super().cleanse_setting(key, value)
        return self.cleanse_text(cleansed)

    def cleansed_querydict(self, data: MultiValueDict[str, Any]) -> MultiValueDict[str, Any]:
        """Return a copy of POST or GET data with secret fields and secret-shaped values masked."""
        cleansed = QueryDict(mutable=True)
        for key, values in data.lists():
            cleansed.setlist(
                key,
                [
                    self.cleansed_substitute if self.hidden(key) else self.cleanse_text(value)
                    for value in values
                ],
            )
        return cleansed

    def cleanse_text(self, value: Any) -> Any:
        # str(): a lazy string (a proxy) passes isinstance but not the regular expressions.
        return redact(str(value)) if isinstance(value, str) else value

    def get_post_parameters(self, request: HttpRequest | None) -> Any:
        if request is None:
            return {}
        return self.cleansed_querydict(super().get_post_parameters(request))

    def get_traceback_frame_variables(
        self, request: HttpRequest | None, tb_frame: Any
    ) -> Iterable[tuple[str, Any]]:
        variables = super().get_traceback_frame_variables(request, tb_frame)
        return [(name, self.cleanse_variable(name, value)) for name, value in variables]

    def cleanse_variable(self, name: str, value: Any) -> Any:
        """Mask a local variable by its name, its keys, and the text of its repr."""
        try:
            if isinstance(value, MultiValueDict):
                value = self.cleansed_querydict(value)
            else:
                value = self.cleanse_setting(name, value)
            # The page shows pprint(value): render it once here (as Django would) and mask
            # the text, so an object whose repr holds a password shows it masked.
            return Shown(redact(pprint(value)))
        except Exception:  # noqa: BLE001 - what cannot be checked is not shown
            return self.cleansed_substitute


class SecretsExceptionReporter(ExceptionReporter):
    """Django's error report, with messages and request data masked, then the page itself."""

    def get_traceback_data(self) -> dict[str, Any]:
        data = super().get_traceback_data()
        for key in ("exception_value", "exception_notes", "request_insecure_uri"):
            if isinstance(data.get(key), str):
                data[key] = redact(data[key])
        if self.request is not None:
            # Django lists the query string unfiltered; a request may bring its own filter.
            cleaner = self.filter
            if not isinstance(cleaner, SecretsExceptionReporterFilter):
                cleaner = SecretsExceptionReporterFilter()
            data["request_GET_items"] = cleaner.cleansed_querydict(self.request.GET).items()
        for frame in data["frames"]:
            if frame.get("exc_cause") is not None:
                frame["exc_cause"] = redact(str(frame["exc_cause"]))
        return data

    def get_traceback_html(self) -> str:
        return mask_known_secrets(super().get_traceback_html(), escape)

    def get_traceback_text(self) -> str:
        return mask_known_secrets(super().get_traceback_text(), str)


def mask_known_secrets(
    page: str, render: Callable[[str], str], secrets: Iterable[str] | None = None
) -> str:
    """Mask each known secret in a rendered page: as written, %-encoded, and as rendered."""
    forms = secret_forms(secrets if secrets is not None else configured_secrets())
    # Longest first: a secret that contains another is masked whole.
    for form in sorted({*forms, *(str(render(form)) for form in forms)}, key=len, reverse=True):
        page = page.replace(form, MASK)
    return page


class MaskDebugErrorPagesMiddleware:
    """With DEBUG on, mask secrets on every error page Django renders without the reporter.

    The technical 404 page shows the Http404 message and the request URL with its query
    string as they are (no reporter, no filter): a message holding a connection URL, or a
    `?token=` in the address, would be on the page. Outermost in MIDDLEWARE, so it also
    sees the 404 of a URL that resolves to no view.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            settings.DEBUG
            and response.status_code >= 400
            and not response.streaming
            and response.get("Content-Type", "").startswith(("text/html", "text/plain"))
        ):
            charset = response.charset
            page = response.content.decode(charset, errors="replace")
            response.content = mask_known_secrets(redact(page), escape).encode(charset)
        return response
