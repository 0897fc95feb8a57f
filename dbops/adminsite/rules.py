"""The database's rules as form errors in the admin (issue 11.4).

Django validates a model constraint in a form only when every field it names is on the
form: a rule on a read-only field (a profile's `deleted_at`), a field the database fills in
(`created_at`) or an inline's foreign key is skipped, and the write then fails in
PostgreSQL with a server error. `DatabaseRulesForm` checks those rules too, with the
instance's own values. What no form can check (a trigger that runs at commit, a rule
written only in SQL) is the last line: `DatabaseRulesAdmin` checks the deferred rules
before it answers, and turns a write the database refuses into the form's error, with
nothing saved.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

import psycopg
from django import forms
from django.apps import apps
from django.contrib import admin
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import DataError, IntegrityError, connections, router
from django.db.models import F, Q
from django.db.models.constants import LOOKUP_SEP
from django.forms.models import InlineForeignKeyField
from django.http import HttpRequest, HttpResponse

from sqlmigrations.redact import redact

logger = logging.getLogger(__name__)

NUL_IN_JSON = "JSON text cannot contain \\u0000 (NUL): PostgreSQL's jsonb refuses it."
REFUSAL = "_database_refusal"  # the request attribute that carries a refusal to the form
# Rules written only in SQL, which no model declares: (SQLSTATE, message pattern) -> text.
_sql_rules: dict[tuple[str, str], str] = {}


def explain_refusal(sqlstate: str, pattern: str, message: str) -> None:
    """Show `message` when a write fails with SQLSTATE and a matching server message."""
    _sql_rules[(sqlstate, pattern)] = message


def referenced_fields(node: Any) -> set[str]:
    """The field names a Q, a lookup of a Q, an F or an expression refers to."""
    if isinstance(node, Q):
        return set().union(*(referenced_fields(child) for child in node.children))
    if isinstance(node, tuple):  # a Q's ("field__lookup", value)
        return {node[0].split(LOOKUP_SEP)[0]} | referenced_fields(node[1])
    if isinstance(node, F):
        return {node.name.split(LOOKUP_SEP)[0]}
    if hasattr(node, "get_source_expressions"):
        return set().union(*(referenced_fields(e) for e in node.get_source_expressions()))
    return set()


def constraint_fields(model: Any, constraint: Any) -> set[str]:
    """The names of the model fields a Meta constraint refers to."""
    names = set(getattr(constraint, "fields", ()))
    names |= referenced_fields(getattr(constraint, "condition", None))
    for expression in getattr(constraint, "expressions", ()):
        if isinstance(expression, tuple):  # an exclusion constraint's (expression, operator)
            expression = expression[0]
        names |= referenced_fields(F(expression) if isinstance(expression, str) else expression)
    by_attname = {f.attname: f.name for f in model._meta.concrete_fields}
    return {by_attname.get(name, name) for name in names}


def contains_nul(value: Any) -> bool:
    """Tell whether a JSON value has a NUL character in a key or a string."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(v) for v in value)
    return False


class DatabaseRulesForm(forms.ModelForm):
    """A model form that checks every Meta constraint, also those on fields it leaves out."""

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        for name, field in self.fields.items():
            if isinstance(field, forms.JSONField) and contains_nul(data.get(name)):
                self.add_error(name, NUL_IN_JSON)
        return data

    def validate_unique(self) -> None:
        super().validate_unique()
        model = self._meta.model
        # The fields Django left out of constraint validation, as ModelForm._post_clean
        # computes them: those not on the form (read-only, not editable) and an inline's
        # foreign key.
        skipped = self._get_validation_exclusions() | {
            name for name, field in self.fields.items() if isinstance(field, InlineForeignKeyField)
        }
        failed = {name for name in self.errors if name != NON_FIELD_ERRORS}
        shown = set(self.fields) - skipped
        using = router.db_for_write(model, instance=self.instance)
        for owner, constraints in self.instance.get_constraints():
            for constraint in constraints:
                names = constraint_fields(owner, constraint)
                if not names & (skipped - failed) or names & failed:
                    continue  # Django checked it, or one of its fields is already in error
                try:
                    constraint.validate(owner, self.instance, exclude=failed, using=using)
                except ValidationError as err:
                    on_form = names & shown
                    self.add_error(on_form.pop() if len(on_form) == 1 else None, err.messages)


@dataclass(frozen=True)
class Refusal:
    """A write the database refused, said as a form error."""

    message: str
    field: str | None = None


def _model_rules() -> dict[str, tuple[str, set[str]]]:
    """Each named Meta constraint: its message and the fields it names."""
    rules: dict[str, tuple[str, set[str]]] = {}
    for model in apps.get_models():
        for constraint in model._meta.constraints:
            rules[constraint.name] = (
                str(constraint.get_violation_error_message()),
                constraint_fields(model, constraint),
            )
    return rules


def refusal_of(error: IntegrityError | DataError, form_fields: set[str]) -> Refusal:
    """Say why the database refused a write, naming its rule, for the form to show."""
    cause = error.__cause__
    diag = cause.diag if isinstance(cause, psycopg.Error) else None
    sqlstate = getattr(cause, "sqlstate", None) or ""
    primary = (diag.message_primary if diag else None) or str(error).splitlines()[0]
    constraint = diag.constraint_name if diag else None
    for (state, pattern), message in _sql_rules.items():
        if sqlstate == state and re.fullmatch(pattern, primary):
            return Refusal(message)
    known = _model_rules().get(constraint or "")
    if known is not None:
        message, names = known
        on_form = names & form_fields
        return Refusal(message, on_form.pop() if len(on_form) == 1 else None)
    hint = f" {diag.message_hint}" if diag and diag.message_hint else ""
    rule = f" (rule {constraint})" if constraint else ""
    return Refusal(redact(f"The database refused this change{rule}: {primary}.{hint}"))


def _refused_form(form_class: type[forms.ModelForm], refusal: Refusal) -> type[forms.ModelForm]:
    def clean(self: forms.ModelForm) -> dict[str, Any]:
        data = form_class.clean(self)
        field = refusal.field if refusal.field in self.fields else None
        self.add_error(field, refusal.message)
        return data

    return type(form_class.__name__, (form_class,), {"clean": clean})


class DatabaseRulesAdmin(admin.ModelAdmin):
    """A ModelAdmin whose forms show the database's rules as errors, never a server error."""

    form = DatabaseRulesForm

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except (IntegrityError, DataError) as err:
            if request.method != "POST" or hasattr(request, REFUSAL):
                raise
            fields = set(self.get_form(request).base_fields)
            refusal = refusal_of(err, fields)
            logger.warning(
                "%s: the database refused the admin's write, shown as a form error: %s",
                self.opts.label,
                redact(str(err).splitlines()[0]),
            )
            # The view runs again on the same data (its transaction was rolled back); this
            # time the form carries the refusal, so it is shown with what was entered.
            setattr(request, REFUSAL, refusal)
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[forms.ModelForm]:
        form = super().get_form(request, obj, change, **kwargs)
        refusal = getattr(request, REFUSAL, None)
        return form if refusal is None else _refused_form(form, refusal)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # Rules checked at commit (deferred constraint triggers) are checked now, while a
        # refusal can still be shown on the form and before the success message is sent.
        connections[router.db_for_write(self.model)].check_constraints()


class DatabaseRulesInline(admin.TabularInline):
    """A tabular inline whose forms check the database's rules (see DatabaseRulesForm)."""

    form = DatabaseRulesForm
