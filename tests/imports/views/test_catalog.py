"""The catalog page `/`: Hub search, filters, paging, cache, registry badges, errors."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.factories import make_version

pytestmark = pytest.mark.django_db


def search_requests(hub_double, needle: str) -> int:
    return sum(
        1
        for entry in hub_double.requests
        if entry.path.startswith("/api/models?") and needle in entry.path
    )


def test_it_requires_sign_in(client, hub):
    response = client.get("/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/")


def test_it_refuses_a_user_in_no_group(nobody, hub):
    from tests.factories import signed_in

    response = signed_in(nobody).get("/")

    assert response.status_code == 403
    assert b"viewer or importer or auditor or registry-admin" in response.content


def test_it_lists_hub_search_results_with_their_details(bob_client, hub):
    response = bob_client.get("/", {"q": "tiny"})

    assert response.status_code == 200
    html = response.content.decode()
    assert 'data-repo="acme/tiny-bert"' in html
    assert 'href="/hub/acme/tiny-bert/"' in html
    assert "fill-mask" in html and "125000" in html and "apache-2.0" in html
    assert "demo-org/model-01" not in html
    assert response["Vary"].count("HX-Request") == 1


def test_it_filters_by_task_library_and_license(bob_client, hub):
    response = bob_client.get("/", {"task": "image-classification", "library": "timm"})

    html = response.content.decode()
    assert response.status_code == 200
    expected = [f"demo-org/model-{i:02d}" for i in range(30) if i % 4 == 2 and i % 3 == 1]
    assert expected and all(f'data-repo="{repo}"' in html for repo in expected)
    assert html.count('class="result"') == len(expected)

    html = bob_client.get("/", {"license": "llama2"}).content.decode()
    assert html.count('class="result"') == 1
    assert 'data-repo="acme/gated-llama"' in html


def test_it_answers_htmx_with_the_results_fragment_only(bob_client, hub):
    response = bob_client.get("/", {"q": "tiny"}, HTTP_HX_REQUEST="true")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in html and "<form" not in html
    assert 'data-repo="acme/tiny-bert"' in html


def test_it_answers_a_repeated_search_from_the_cache(bob_client, hub):
    hub.clear_requests()
    first = bob_client.get("/", {"q": "Model-0", "sort": "likes"})
    second = bob_client.get("/", {"q": "  model-0 ", "sort": "likes"}, HTTP_HX_REQUEST="true")

    assert first.status_code == second.status_code == 200
    assert 'data-repo="demo-org/model-05"' in second.content.decode()
    assert search_requests(hub, "search=") == 1


def test_it_pages_through_the_hubs_link_header(bob_client, hub):
    first = bob_client.get("/", {"q": "demo-org"})
    html = first.content.decode()
    assert html.count('class="result"') == 20
    start = html.index('rel="next"')
    href = html[html.rindex('href="', 0, start) + 6 :]
    href = href[: href.index('"')].replace("&amp;", "&")

    second = bob_client.get("/" + href)

    page_two = second.content.decode()
    assert second.status_code == 200
    assert page_two.count('class="result"') == 10
    assert "Page 2" in page_two
    first_repos = {line for line in html.splitlines() if "data-repo=" in line}
    second_repos = {line for line in page_two.splitlines() if "data-repo=" in line}
    assert not first_repos & second_repos


@pytest.mark.parametrize(
    "cursor",
    [
        "search=demo&limit=100000&full=true&cardData=true&expand=safetensors",
        "limit=100000",
        "eyJvZmZzZXQiOjIwfQ&limit=100000",
        "https://evil.example/api/models?limit=5",
    ],
)
def test_a_crafted_cursor_never_reaches_the_hub(bob_client, hub, cursor):
    """Security review item 9: only the Hub's opaque cursor is accepted; the other parameters
    of the Hub request are the search's own, so no limit over 100 and no full/cardData."""
    hub.clear_requests()

    response = bob_client.get("/", {"q": "demo", "cursor": cursor})

    assert response.status_code == 400
    assert "cursor is not valid" in response.content.decode()
    assert search_requests(hub, "") == 0


def test_a_cursor_the_hub_did_not_make_is_bad_input_not_a_hub_failure(bob_client, hub):
    response = bob_client.get("/", {"q": "demo", "cursor": "bm90LWEtaHViLWN1cnNvcg=="})

    assert response.status_code == 400
    html = response.content.decode()
    assert "cursor is not valid; start the search again" in html
    assert "The Hub is not answering" not in html


def test_every_search_request_carries_only_the_searchs_own_parameters(bob_client, hub):
    hub.clear_requests()
    first = bob_client.get("/", {"q": "demo-org"}).content.decode()
    start = first.index('rel="next"')
    href = first[first.rindex('href="', 0, start) + 6 :]
    bob_client.get("/" + href[: href.index('"')].replace("&amp;", "&"))

    searches = [parse_qs(urlsplit(entry.path).query) for entry in hub.requests
                if urlsplit(entry.path).path == "/api/models"]  # fmt: skip
    assert len(searches) == 2
    for params in searches:
        assert int(params["limit"][0]) <= 100
        assert not {"full", "cardData", "config"} & set(params)
        assert set(params) <= {"search", "sort", "direction", "limit", "expand", "cursor"}
    assert "cursor" in searches[1] and len(searches[1]["cursor"]) == 1


def test_it_shows_a_badge_for_models_already_in_the_registry(bob_client, hub):
    make_version("tiny-bert", "2026.1", source_repo="acme/tiny-bert")

    html = bob_client.get("/", {"q": "tiny"}).content.decode()

    assert 'href="/registry/tiny-bert/2026.1/"' in html
    assert "in registry: tiny-bert 2026.1" in html


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"sort": "random"}, "Sort"),
        ({"task": "mind-reading"}, "Task"),
        ({"q": "x" * 201}, "at most 200"),
        ({"page": "0"}, "Page"),
        ({"cursor": "evil=1"}, "cursor"),
        ({"colour": "blue"}, "Unknown query parameter"),
    ],
)
def test_it_rejects_invalid_search_parameters_with_a_message(bob_client, hub, params, message):
    response = bob_client.get("/", params)

    assert response.status_code == 400
    assert message in response.content.decode()


def test_it_says_the_hub_is_unavailable_instead_of_failing(bob_client, settings, fresh_hub_double):
    settings.HF_ENDPOINT = fresh_hub_double.url
    fresh_hub_double.fail_api_with = 503

    response = bob_client.get("/", {"q": "anything"})

    assert response.status_code == 503
    assert "The Hub is not answering" in response.content.decode()
    assert "try again later" in response.content.decode()
