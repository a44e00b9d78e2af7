"""`/imports/`: all imports or mine, filtered, paged with a fixed number of queries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from imports.models import ImportRequest
from registry.models import ModelVersion
from tests.factories import bulk_registry

pytestmark = pytest.mark.django_db


def imports_for(user, count: int, **fields) -> None:
    ImportRequest.objects.bulk_create(
        ImportRequest(
            repo_id=f"acme/model-{index}",
            model_name=f"model-{index}",
            version="1.0",
            sign_key="aegis-model-sign",
            actor=user.username,
            requested_by=user,
            **fields,
        )
        for index in range(count)
    )


def test_it_lists_all_imports_with_status_stage_who_when_and_duration(alice, bob, bob_client):
    started = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    ImportRequest.objects.create(
        repo_id="acme/tiny-bert", model_name="tiny-bert", version="1.0", sign_key="k",
        actor="alice", requested_by=alice, status="failed", stage="download",
        started_at=started, finished_at=started + timedelta(seconds=75),
    )  # fmt: skip
    imports_for(bob, 1)

    html = bob_client.get("/imports/").content.decode()

    assert "2 imports" in html
    assert "acme/tiny-bert" in html and "acme/model-0" in html
    assert 'status-failed">failed<' in html and "Download" in html
    assert "75.0 s" in html
    assert "<td>alice</td>" in html and "<td>bob</td>" in html


def test_it_lists_only_my_imports_with_mine(alice, bob, bob_client):
    imports_for(alice, 3)
    imports_for(bob, 2)

    html = bob_client.get("/imports/", {"mine": "1"}).content.decode()

    assert "<h1>My imports</h1>" in html
    assert "2 imports" in html
    assert "<td>alice</td>" not in html


def test_it_filters_by_status(alice, bob_client):
    imports_for(alice, 3)
    imports_for(alice, 2, status="succeeded")

    html = bob_client.get("/imports/", {"status": "succeeded"}).content.decode()

    assert "2 imports" in html


def test_it_runs_the_same_number_of_queries_whatever_the_page_size(
    alice, bob_client, django_assert_max_num_queries
):
    bulk_registry(models=1000, versions_per_model=5)
    imports_for(alice, 5000, status="succeeded")
    versions = list(ModelVersion.objects.order_by("pk")[:5000])
    requests = list(ImportRequest.objects.order_by("pk"))
    for request, version in zip(requests, versions, strict=True):
        request.model_version = version
    ImportRequest.objects.bulk_update(requests, ["model_version"], batch_size=1000)
    bob_client.get("/imports/")  # the session and user are loaded the same way from here on

    with django_assert_max_num_queries(6) as small:
        small_page = bob_client.get("/imports/", {"per_page": "10"})
    with django_assert_max_num_queries(6) as large:
        large_page = bob_client.get("/imports/", {"per_page": "100", "page": "3"})

    assert small_page.status_code == large_page.status_code == 200
    assert small_page.content.decode().count("/registry/model-") == 10
    assert large_page.content.decode().count("/registry/model-") == 100
    assert "5000 imports" in large_page.content.decode()
    assert len(small.captured_queries) == len(large.captured_queries)


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"page": str(10**30)}, 400, "Page"),
        ({"page": "9999"}, 404, "There is no page 9999"),
        ({"per_page": "7"}, 400, "Per page"),
        ({"status": "exploded"}, 400, "Status"),
        ({"mine": "yes"}, 400, "Whose"),
        ({"owner": "bob"}, 400, "Unknown query parameter"),
    ],
)
def test_it_rejects_malformed_parameters(bob_client, params, status, message):
    response = bob_client.get("/imports/", params)

    assert response.status_code == status
    assert message in response.content.decode()
