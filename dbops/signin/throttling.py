"""Who is signing in, and when django-axes refuses them (docs/security.md, sign-in throttling).

The client's address is the right-most X-Forwarded-For entry that no trusted proxy wrote:
each proxy appends the address it was reached from, so entries left of those are whatever
the client sent. Failures are counted per (username, address) pair, so nobody can lock a
user out from another address, and per address, so one address cannot try many names.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from axes.attempts import get_cool_off_threshold
from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Sum
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """Return the client's address as the TRUSTED_PROXY_COUNT nearest proxies saw it."""
    peer = request.META.get("REMOTE_ADDR", "")
    hops = settings.TRUSTED_PROXY_COUNT
    if hops == 0:
        return peer
    # REMOTE_ADDR is the nearest proxy; the farthest trusted proxy wrote entry -hops. A
    # plain split on commas: X-Forwarded-For has no quoting (a parser that honours quotes
    # lets an unclosed quote hide the proxies' entries).
    entries = [entry.strip() for entry in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
    if len(entries) < hops:
        # Fewer hops than configured: the request skipped a proxy, so nothing in the
        # header can be trusted; the peer is the only address known.
        return peer
    try:
        return str(ipaddress.ip_address(entries[-hops]))
    except ValueError:
        return peer


class PairAndAddressHandler(AxesDatabaseHandler):
    """django-axes' database handler, also locking an address after its own limit.

    AXES_LOCKOUT_PARAMETERS counts the (username, address) pair against
    AXES_FAILURE_LIMIT; SIGNIN_ADDRESS_FAILURE_LIMIT counts every failure from the
    address, whatever the name.
    """

    def get_failures(self, request: Any, credentials: dict[str, Any] | None = None) -> int:
        pair_failures = super().get_failures(request, credentials)
        if self.address_failures(request) >= settings.SIGNIN_ADDRESS_FAILURE_LIMIT:
            # axes compares this one figure with AXES_FAILURE_LIMIT, both to refuse a
            # sign-in and to record a lockout: report a locked address as at the limit.
            return max(pair_failures, get_failure_limit(request, credentials))
        return pair_failures

    def address_failures(self, request: Any) -> int:
        attempts = AccessAttempt.objects.filter(ip_address=request.axes_ip_address)
        if settings.AXES_COOLOFF_TIME is not None:
            attempts = attempts.filter(attempt_time__gte=get_cool_off_threshold(request))
        return attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
