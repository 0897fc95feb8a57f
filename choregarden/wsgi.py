"""WSGI entry point: refuses to start when the read replica's URL points at a primary."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "choregarden.settings")
application = get_wsgi_application()


def _replica_checked() -> None:
    import logging

    from django.conf import settings

    from dbops.connections.replicas import REPLICA, ReplicaIsPrimary, verify_at_start

    if REPLICA not in settings.DATABASES:
        return
    problem = verify_at_start()
    if problem is None:
        return
    refused, message = problem
    if refused:
        raise ReplicaIsPrimary(message)
    logging.getLogger("dbops.replica").warning(message)


_replica_checked()
