"""Work is refused before anything is written when the job queue's Redis does not answer."""

from __future__ import annotations

import django_rq
from redis.exceptions import RedisError


def require_queue(name: str, error: type[Exception], message: str) -> None:
    """Raise ``error(message)`` unless the Redis of RQ queue ``name`` answers a ping. The
    message is the caller's: never the Redis URL, which may carry a password."""
    try:
        django_rq.get_connection(name).ping()
    except (RedisError, OSError):
        raise error(message) from None
