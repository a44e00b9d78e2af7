"""The Hub's answers for one watched repo, with retries the watch bounds itself.

A busy or failing Hub (HTTP 408, 429, 5xx, no connection) is asked again after a wait that
doubles from ``AEGIS_HUB_RETRY_WAIT_MS``, or after what ``Retry-After`` says; a wait longer than
``AEGIS_UPSTREAM_MAX_WAIT`` is not made (the next pass asks again). When every attempt fails,
``UpstreamUnavailable`` says so: nothing is known, and nothing is marked changed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from django.conf import settings

from aegis_catalog.lib.hub import (
    HubClient,
    HubError,
    HubUnavailable,
    RepoNotFound,
    RevisionNotFound,
)
from registry.upstream.diff import GONE_REPO, GONE_REVISION, Upstream

Result = TypeVar("Result")


class UpstreamUnavailable(Exception):
    """The Hub did not answer a check, even after its retries; ``rate_limited`` when it last
    answered 429."""

    def __init__(self, message: str, *, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.rate_limited = rate_limited


@dataclass(frozen=True)
class Retries:
    """How often a check asks the Hub again, and how long it may wait in between."""

    retries: int
    wait: float
    max_wait: float
    sleep: Callable[[float], None] = time.sleep

    @classmethod
    def from_settings(cls) -> Retries:
        return cls(
            retries=settings.AEGIS_HUB_RETRIES,
            wait=settings.AEGIS_HUB_RETRY_WAIT_MS / 1000,
            max_wait=float(settings.AEGIS_UPSTREAM_MAX_WAIT),
        )


def retrying(call: Callable[[], Result], retries: Retries) -> Result:
    """``call()``, asked again while the Hub is unavailable; UpstreamUnavailable at the end."""
    wait = retries.wait
    for attempt in range(retries.retries + 1):
        try:
            return call()
        except HubUnavailable as error:
            rate_limited = error.status == 429
            if attempt == retries.retries:
                tries = f" ({attempt + 1} attempts)" if attempt else ""
                raise UpstreamUnavailable(f"{error}{tries}", rate_limited=rate_limited) from error
            pause = error.retry_after if error.retry_after is not None else wait
            if pause > retries.max_wait:
                raise UpstreamUnavailable(
                    f"{error} It asks to wait {pause:g} s, longer than AEGIS_UPSTREAM_MAX_WAIT "
                    f"({retries.max_wait:g} s): the next pass asks again.",
                    rate_limited=rate_limited,
                ) from error
            retries.sleep(pause)
            wait = min(wait * 2, max(retries.max_wait, retries.wait))
    raise AssertionError("unreachable")  # pragma: no cover


def read_upstream(
    client: HubClient, repo_id: str, revision: str, since_commit: str, retries: Retries
) -> Upstream:
    """The repo at ``revision`` and, when it moved past ``since_commit``, its newest commits.

    A repo or revision the Hub does not know is ``gone``; other Hub errors are raised (a
    refused token, a gated model info): the check could not be made. A Hub without a commit
    listing (a mirror) gives the model without the new commits' titles.
    """
    try:
        model = retrying(lambda: client.model_info(repo_id, revision), retries)
    except RepoNotFound:
        return Upstream(None, gone=GONE_REPO)
    except RevisionNotFound:
        return Upstream(None, gone=GONE_REVISION)
    if model.commit == since_commit:
        return Upstream(model)
    try:
        commits = retrying(lambda: client.list_commits(model.repo_id, model.commit), retries)
    except HubError:
        # Not a transient failure (those raise UpstreamUnavailable): this Hub lists no commits.
        return Upstream(model)
    return Upstream(model, commits=commits)
