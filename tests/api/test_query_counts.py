"""Must-show 4: listing 5,000 versions page by page costs the same few queries on every page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.factories import bulk_registry

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _last_use_recorded_once(monkeypatch):
    """A token's last use is written at most once a minute; on a slow machine a page could
    fall after that minute and count one more query. Once a day keeps the pages comparable."""
    monkeypatch.setattr("api.actions.LAST_USED_RESOLUTION", timedelta(days=1))


def test_it_lists_5000_versions_by_cursor_with_a_fixed_number_of_queries_per_page(bob_api):
    bulk_registry(models=1000, versions_per_model=5)
    bob_api.get("/api/v1/keys")  # the token's first use also records last_used_at

    seen: list[tuple[str, str]] = []
    counts: list[int] = []
    url, params = "/api/v1/versions", {"limit": 200}
    while True:
        with CaptureQueriesContext(connection) as queries:
            response = bob_api.get(url, **params)
        assert response.status_code == 200, response.content
        counts.append(len(queries))
        body = response.json()
        seen += [(item["model"], item["version"]) for item in body["items"]]
        if body["next_cursor"] is None:
            assert body["next"] is None
            break
        assert body["next"].endswith(f"cursor={body['next_cursor']}")
        params = {"limit": 200, "cursor": body["next_cursor"]}

    assert len(seen) == len(set(seen)) == 5000
    assert len(counts) == 25
    # token (with its user), the user's groups, one page of versions with their models
    assert set(counts) == {3}, counts


def test_it_pages_models_by_number_with_a_fixed_number_of_queries(
    bob_api, django_assert_num_queries
):
    bulk_registry(models=1000, versions_per_model=5)
    bob_api.get("/api/v1/keys")

    # token, groups, count, one page of models with their version counts and latest version
    with django_assert_num_queries(4):
        first = bob_api.get("/api/v1/models", per_page=100).json()
    with django_assert_num_queries(4):
        last = bob_api.get("/api/v1/models", per_page=100, page=10).json()

    assert (first["total"], first["pages"]) == (1000, 10)
    assert [item["name"] for item in first["items"]][:2] == ["model-0000", "model-0001"]
    assert last["items"][-1]["name"] == "model-0999" and last["next"] is None
    assert last["items"][-1]["version_count"] == 5
    assert last["items"][-1]["latest_version"] == "1.4"


def test_it_pages_a_models_versions_with_a_fixed_number_of_queries(
    bob_api, django_assert_num_queries
):
    bulk_registry(models=2, versions_per_model=30)
    bob_api.get("/api/v1/keys")

    # token, groups, the model, count, one page of its versions
    with django_assert_num_queries(5):
        first = bob_api.get("/api/v1/models/model-0001", per_page=10).json()
    with django_assert_num_queries(5):
        third = bob_api.get("/api/v1/models/model-0001", per_page=10, page=3).json()

    assert first["versions"]["total"] == 30
    assert [item["version"] for item in first["versions"]["items"]][:2] == ["1.29", "1.28"]
    assert third["versions"]["items"][-1]["version"] == "1.0"
