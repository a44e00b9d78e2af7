"""Hub answers the pages and the import request share, kept in the cache.

A Hub model page and the import started from it read the same ``model_info``; a commit's card
never changes, so it is kept for a day.
"""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.core.cache import cache

from aegis_catalog import services
from aegis_catalog.lib.hub import COMMIT_RE, HubModel
from imports.cards import render_card

CARD_SECONDS = 24 * 3600


def hub_cache_key(kind: str, *parts: str) -> str:
    """A cache key for a Hub answer: the endpoint and the request's parts, hashed."""
    digest = hashlib.sha256("\x1f".join((settings.HF_ENDPOINT, *parts)).encode()).hexdigest()
    return f"hub:{kind}:{digest}"


def cached_model_info(repo_id: str, revision: str, *, interactive: bool = True) -> HubModel:
    """``model_info`` at a revision; ``interactive`` (a page someone waits for) does not retry."""
    key = hub_cache_key("model", repo_id, revision)
    model: HubModel | None = cache.get(key)
    if model is None:
        model = services.hub_client(interactive=interactive).model_info(repo_id, revision)
        cache.set(key, model)
    return model


def pinned_commit(repo_id: str, revision: str, *, interactive: bool = True) -> str:
    """The commit a revision names: itself when it is a full commit id, else the Hub's answer."""
    if COMMIT_RE.fullmatch(revision):
        return revision
    return cached_model_info(repo_id, revision, interactive=interactive).commit


def cached_card(repo_id: str, commit: str) -> str:
    """The card's sanitized HTML at a commit."""
    key = hub_cache_key("card", repo_id, commit)
    html: str | None = cache.get(key)
    if html is None:
        html = render_card(services.hub_client().fetch_card(repo_id, commit))
        cache.set(key, html, timeout=CARD_SECONDS)
    return html
