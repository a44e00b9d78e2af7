"""Issue 13 items 5 and 7: the provenance and model pages show the lines that pull a version
through /hf/; auditors see who pulled it."""

from __future__ import annotations

import html
from datetime import date

import pytest
from django.utils import timezone

from registry.actions import set_version_status
from registry.models import Pull
from tests.factories import make_version

pytestmark = pytest.mark.django_db


def pull_block(page: str) -> str:
    start = page.index('id="pull-lines"')
    return html.unescape(page[start : page.index("</pre>", start)])


def test_the_provenance_page_shows_how_to_pull_the_version(bob_client):
    make_version("tiny-bert", "1.0")
    page = bob_client.get("/registry/tiny-bert/1.0/").content.decode()
    lines = pull_block(page)
    assert "export HF_ENDPOINT=http://testserver/hf\n" in lines
    assert "export HF_TOKEN=<your Aegis API token>" in lines
    assert 'snapshot_download("aegis/tiny-bert", revision="1.0")' in lines
    assert 'AutoModel.from_pretrained("aegis/tiny-bert", revision="1.0")' in lines
    assert "python aegis_pull.py aegis/tiny-bert 1.0" in lines
    assert "data-copy" in page and "/static/copy.js" in page


def test_a_yanked_version_shows_no_pull_lines(bob_client):
    version = make_version("tiny-bert", "1.0")
    set_version_status(version, "yanked", actor="rosa", reason="bad weights")
    page = bob_client.get("/registry/tiny-bert/1.0/").content.decode()
    assert 'id="pull-lines"' not in page and "Yanked: not served at" in page


def test_the_model_page_pulls_main_while_a_version_is_active(bob_client, settings):
    settings.AEGIS_HF_NAMESPACE = "models"
    version = make_version("tiny-bert", "1.0")
    lines = pull_block(bob_client.get("/registry/tiny-bert/").content.decode())
    assert 'snapshot_download("models/tiny-bert", revision="main")' in lines
    set_version_status(version, "deprecated", actor="rosa", reason="old")
    assert 'id="pull-lines"' not in bob_client.get("/registry/tiny-bert/").content.decode()


def test_auditors_see_who_pulled_a_version_and_viewers_do_not(bob_client, charlie_client, bob):
    version = make_version("tiny-bert", "1.0")
    now = timezone.now()
    Pull.objects.create(
        version=version, actor="vera", user=None, day=date(2026, 11, 28), first_at=now,
        last_at=now, files=6, bytes=4096,
    )  # fmt: skip
    page = charlie_client.get("/registry/tiny-bert/1.0/").content.decode()
    pulls = page[page.index('id="pulls"') : page.index("</section>", page.index('id="pulls"'))]
    assert "2026-11-28" in pulls and '<td class="actor">vera</td>' in pulls
    assert "<td>6</td>" in pulls and "4.0\xa0KB" in pulls
    assert 'id="pulls"' not in bob_client.get("/registry/tiny-bert/1.0/").content.decode()
