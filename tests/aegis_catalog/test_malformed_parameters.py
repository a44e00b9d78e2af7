"""Every page and partial answers malformed query parameters with a 4xx and a message."""

from __future__ import annotations

import pytest

from imports.actions import ImportOptions, start_import
from tests.factories import make_version

pytestmark = pytest.mark.django_db

PAGES = [
    "/",
    "/hub/acme/tiny-bert/",
    "/imports/",
    "/imports/{import_id}/",
    "/imports/{import_id}/progress/",
    "/registry/",
    "/registry/tiny-bert/",
    "/registry/tiny-bert/1.0/",
]
MALFORMED = {
    "bad sort": {"sort": "DROP TABLE"},
    "huge page": {"page": str(10**30)},
    "negative page": {"page": "-1"},
    "page not a number": {"page": "1e9"},
    "unknown filter": {"filter": "license:mit"},
    "unknown task": {"task": "mind-reading"},
    "unknown license": {"license": "no-such-license"},
    "10 kB search": {"q": "a" * 10_240},
    "10 kB revision": {"revision": "b" * 10_240},
    "NUL byte": {"q": "\x00"},
}


@pytest.fixture
def import_id(alice) -> int:
    request = start_import(
        ImportOptions(repo_id="acme/tiny-bert", model_name="tiny-bert", version="9.9"),
        actor="alice",
        user=alice,
        enqueue=False,
    )
    return request.pk


@pytest.mark.parametrize("htmx", [False, True], ids=["page", "htmx"])
@pytest.mark.parametrize("case", list(MALFORMED))
@pytest.mark.parametrize("page", PAGES)
def test_it_answers_4xx_with_a_message_never_500(bob_client, hub, import_id, page, case, htmx):
    make_version("tiny-bert", "1.0")
    url = page.format(import_id=import_id)
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}

    response = bob_client.get(url, MALFORMED[case], **headers)

    assert 400 <= response.status_code < 500, (url, case, response.status_code)
    body = response.content.decode()
    assert 'class="notice error"' in body
    assert "Traceback" not in body
