"""The Hub model page `/hub/<org>/<name>/`: card, chips, files, warnings, versions, form."""

from __future__ import annotations

import uuid
from datetime import date

import pytest

from aegis_catalog.lib.hub import HubClient
from registry.card import card_metadata
from tests.factories import make_version

pytestmark = pytest.mark.django_db


def test_it_requires_sign_in(client, hub):
    response = client.get("/hub/acme/tiny-bert/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_it_shows_the_rendered_card_chips_and_files(bob_client, hub):
    response = bob_client.get("/hub/acme/tiny-bert/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "<h1>Tiny BERT</h1>" in html
    assert "license: apache-2.0" not in html  # the YAML front matter is not shown as text
    for kind, value in [
        ("license", "apache-2.0"),
        ("task", "fill-mask"),
        ("library", "transformers"),
        ("language", "en"),
        ("dataset", "wikitext"),
        ("base model", "google-bert/bert-base-uncased"),
    ]:
        assert f'<span class="chip-kind">{kind}</span> {value}' in html
    files = hub.files("acme/tiny-bert")
    for path in files:
        assert f"<code>{path}</code>" in html
    total = sum(len(content) for content in files.values())
    assert f'<td class="num" id="total-size">{total}\xa0bytes</td>' in html
    assert hub.resolve("acme/tiny-bert")[:12] in html


def test_it_shows_the_cards_fields_where_the_hub_gives_none(bob_client, hub):
    """Issue 17: the card's pipeline_tag, library and license, with no top-level Hub field,
    are shown as the registry would record them (one extraction for both)."""
    repo_id = f"acme/card-only-{uuid.uuid4().hex[:6]}"
    hub.add_repo(
        repo_id,
        {"config.json": "{}"},
        card_data={
            "pipeline_tag": "token-classification",
            "library_name": "flair",
            "license": "mit",
            "language": ["de"],
        },
    )
    model = HubClient(hub.url, None).model_info(repo_id)
    assert model.pipeline_tag in (None, "")  # the Hub's own field is missing

    html = bob_client.get(f"/hub/{repo_id}/").content.decode()

    for kind, value in [("task", "token-classification"), ("library", "flair"), ("language", "de")]:
        assert f'<span class="chip-kind">{kind}</span> {value}' in html
    meta = card_metadata(model)
    assert (meta.pipeline_tag, meta.library_name) == ("token-classification", "flair")


def test_it_offers_importers_the_form_with_defaults(alice_client, hub):
    html = alice_client.get("/hub/acme/tiny-bert/").content.decode()

    commit = hub.resolve("acme/tiny-bert")
    assert 'action="/hub/acme/tiny-bert/import/"' in html
    assert 'name="model_name" value="tiny-bert"' in html
    assert f'name="version" value="{date.today():%Y%m%d}-{commit[:7]}"' in html
    assert 'name="revision" value="main"' in html
    assert 'id="import-button"' in html


def test_it_shows_no_import_form_to_viewers(bob_client, hub):
    html = bob_client.get("/hub/acme/tiny-bert/").content.decode()

    assert "import-form" not in html
    assert "import-button" not in html


def test_it_warns_about_pickle_files(bob_client, hub):
    html = bob_client.get("/hub/acme/pickled-net/").content.decode()

    assert "pickle-based format (pytorch_model.bin)" in html
    assert '<span class="chip warn">pickle</span>' in html


def test_it_warns_about_gated_models(bob_client, hub):
    html = bob_client.get("/hub/acme/gated-llama/").content.decode()

    assert "This model is gated" in html
    assert '<li class="chip warn"><span class="chip-kind">gated</span> manual</li>' in html


def test_it_warns_when_no_license_is_named(bob_client, hub):
    html = bob_client.get("/hub/acme/no-card/").content.decode()

    assert "The card names no license" in html
    assert "This model has no card." in html


def test_it_renders_a_hostile_card_inert(bob_client, hub):
    html = bob_client.get("/hub/acme/hostile-card/").content.decode()
    card = html[html.index('id="model-card"') : html.index("</article>")]

    assert "Totally normal model" in card
    for bad in ("<script", "<iframe", "onerror", "onmouseover", 'href="javascript:', "style="):
        assert bad not in card.lower()
    assert "<img>" in card  # the onerror image survives only as an inert, src-less tag
    # the tag from the card metadata is not rendered as markup anywhere
    assert "<script>alert(1)</script>" not in html


def test_it_lists_versions_already_imported(bob_client, hub):
    make_version("tiny-bert", "1.0", source_repo="acme/tiny-bert", commit="a" * 40)

    html = bob_client.get("/hub/acme/tiny-bert/").content.decode()

    assert 'href="/registry/tiny-bert/1.0/"' in html
    assert "commit aaaaaaa" in html


def test_it_shows_a_revision(bob_client, hub):
    old = hub.demo.commits["acme/tiny-bert"][0]

    html = bob_client.get("/hub/acme/tiny-bert/", {"revision": "v1.0"}).content.decode()

    assert f'title="{old}"' in html


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/hub/acme/does-not-exist/", 404, "has no model"),
        ("/hub/acme/tiny-bert/?revision=nope", 404, "has no branch, tag or commit"),
        ("/hub/acme/tiny-bert/?revision=a..b", 400, "not a valid branch"),
        ("/hub/acme/-bad-/", 404, "Not found"),
        ("/hub/acme/private-model/", 404, "if it is private, set HF_TOKEN"),
    ],
)
def test_it_explains_missing_or_invalid_models(bob_client, hub, url, status, message):
    response = bob_client.get(url)

    assert response.status_code == status
    assert message in response.content.decode()
