"""`/registry/`: registered models with search and filters; fixed query count per page."""

from __future__ import annotations

import pytest

from tests.factories import bulk_registry, make_version

pytestmark = pytest.mark.django_db


def test_it_lists_models_with_their_latest_version_and_count(bob_client):
    make_version("tiny-bert", "1.0", license="apache-2.0", pipeline_tag="fill-mask", author="acme")
    make_version("tiny-bert", "1.1")
    make_version("other", "0.1", source_repo="zed/other", license="mit", author="zed")

    html = bob_client.get("/registry/").content.decode()

    assert "2 models" in html
    assert 'href="/registry/tiny-bert/"' in html and 'href="/registry/other/"' in html
    row = html[html.index('href="/registry/tiny-bert/"') :]
    row = row[: row.index("</tr>")]
    assert '<td class="num">2</td>' in row
    assert "fill-mask" in row and "apache-2.0" in row and "acme" in row


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"q": "tiny"}, {"tiny-bert"}),
        ({"q": "zed/"}, {"other"}),
        ({"license": "mit"}, {"other"}),
        ({"task": "fill-mask"}, {"tiny-bert"}),
        ({"author": "zed"}, {"other"}),
        ({"tag": "bert"}, {"tiny-bert"}),
        ({"tag": "ber"}, set()),
    ],
)
def test_it_searches_and_filters(bob_client, params, expected):
    make_version(
        "tiny-bert", "1.0", license="apache-2.0", pipeline_tag="fill-mask", author="acme",
        tags=["bert", "tiny"],
    )  # fmt: skip
    make_version("other", "0.1", source_repo="zed/other", license="mit", author="zed", tags=["x"])

    html = bob_client.get("/registry/", params).content.decode()

    shown = {name for name in ("tiny-bert", "other") if f'href="/registry/{name}/"' in html}
    assert shown == expected


def test_it_runs_the_same_number_of_queries_whatever_the_page_size(
    bob_client, django_assert_max_num_queries
):
    bulk_registry(models=1000, versions_per_model=5)
    bob_client.get("/registry/")

    with django_assert_max_num_queries(8) as small:
        small_page = bob_client.get("/registry/", {"per_page": "10"})
    with django_assert_max_num_queries(8) as large:
        large_page = bob_client.get("/registry/", {"per_page": "100", "page": "4"})

    small_html, large_html = small_page.content.decode(), large_page.content.decode()
    assert small_html.count('<td class="num">5</td>') == 10
    assert large_html.count('<td class="num">5</td>') == 100
    assert "1000 models" in large_html and "page 4 of 10" in large_html
    assert 'href="/registry/model-0300/"' in large_html
    assert "<td>1.4</td>" in large_html  # the latest version of each model
    assert len(small.captured_queries) == len(large.captured_queries)


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"license": "not-a-license-here"}, 400, "License"),
        ({"task": "x"}, 400, "Task"),
        ({"tag": "<script>"}, 400, "A tag uses letters"),
        ({"q": "y" * 10_000}, 400, "at most 200"),
        ({"page": str(10**30)}, 400, "Page"),
        ({"page": "2"}, 404, "There is no page 2"),
        ({"per_page": "1000000"}, 400, "Per page"),
        ({"flavour": "x"}, 400, "Unknown query parameter"),
    ],
)
def test_it_rejects_malformed_parameters(bob_client, params, status, message):
    make_version("tiny-bert", "1.0", license="mit")

    response = bob_client.get("/registry/", params)

    assert response.status_code == status
    assert message in response.content.decode()


def test_it_requires_sign_in(client):
    assert client.get("/registry/").status_code == 302


def test_an_unfiltered_page_takes_its_count_from_the_filter_choices_query(
    bob_client, django_assert_max_num_queries
):
    make_version("alpha", "1", license="mit")
    make_version("beta", "1", license="mit")
    make_version("gamma", "1", license="apache-2.0")
    with django_assert_max_num_queries(8) as unfiltered:
        page = bob_client.get("/registry/").content.decode()
    assert "3 models · page 1 of 1" in page
    assert not any('"__count"' in query["sql"] for query in unfiltered.captured_queries)
    filtered = bob_client.get("/registry/?license=mit").content.decode()
    assert "2 models · page 1 of 1" in filtered
