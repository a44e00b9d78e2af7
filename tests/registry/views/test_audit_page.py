"""`/audit/`: events with filters and paging, CSV/JSON exports, the chain status, access."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.urls import reverse

from registry import audit
from registry.models import AuditEvent, ModelVersion, chain_hash
from tests.factories import append_audit_events, make_user, make_version, signed_in
from tests.tampering import tamper

pytestmark = pytest.mark.django_db

DAY = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


def rows_of(html: str) -> list[int]:
    """The sequence numbers of the event rows on an audit page, top to bottom."""
    return [int(number) for number in re.findall(r'<tr class="event" data-sequence="(\d+)"', html)]


def streamed(response) -> str:
    return b"".join(response.streaming_content).decode()


@pytest.fixture
def history(db: None) -> None:
    """Twelve events: rosa and alice, three models, three days, three actions."""
    append_audit_events(
        {
            "created_at": DAY + timedelta(days=index % 3, minutes=index),
            "actor": "rosa" if index % 2 else "alice",
            "action": ["registry.version_edited", "import.succeeded", "verification.passed"][
                index % 3
            ],
            "model_name": ["tiny-bert", "pickled-net", "big-net"][index % 4 % 3],
            "object_repr": "x",
            "details": {"index": index},
        }
        for index in range(12)
    )


def expected(**conditions) -> list[int]:
    return list(
        AuditEvent.objects.filter(**conditions)
        .order_by("-sequence")
        .values_list("sequence", flat=True)
    )


# --- Must-show 1 ----------------------------------------------------------------------------


def test_it_shows_an_admin_license_edit_with_before_after_and_the_admins_name(
    aegis, rosa, charlie_client
):
    call_command(
        "hf_import",
        "--repo-id", "acme/tiny-bert", "--model-name", "tiny-bert", "--version", "1.0",
        "--register", "--no-progress", "--actor", "alice",
    )  # fmt: skip
    version = ModelVersion.objects.get()
    assert version.license == "apache-2.0"
    admin = signed_in(rosa)
    response = admin.post(
        reverse("admin:registry_modelversion_change", args=[version.pk]),
        {"license": "mit", "_save": "Save"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]

    html = charlie_client.get("/audit/?action=registry.version_edited").content.decode()

    row = re.search(r'<tr class="event".*?</tr>', html, re.S)
    assert row is not None, html
    assert '<td class="actor">rosa</td>' in row.group(0)
    assert '<a href="/registry/tiny-bert/1.0/">tiny-bert 1.0</a>' in row.group(0)
    assert '<del class="before" title="before">apache-2.0</del>' in row.group(0)
    assert '<ins class="after" title="after">mit</ins>' in row.group(0)
    assert 'data-field="license"' in row.group(0)


# --- listing and filters --------------------------------------------------------------------


def test_it_lists_events_newest_first_with_the_chain_intact(history, charlie_client):
    response = charlie_client.get("/audit/")

    html = response.content.decode()
    assert response.status_code == 200
    assert rows_of(html) == list(range(12, 0, -1))
    assert "12 events" in html
    assert '<section id="chain" class="panel chain chain-ok"' in html
    assert "All 12 events verify" in html
    assert '<option value="50" selected>50</option>' in html  # the default page size
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.parametrize(
    ("query", "conditions"),
    [
        ("actor=rosa", {"actor": "rosa"}),
        ("action=import.succeeded", {"action": "import.succeeded"}),
        ("model=pickled-net", {"model_name": "pickled-net"}),
        ("from=2026-11-03&to=2026-11-03", {"created_at__date": "2026-11-03"}),
        ("from=2026-11-03", {"created_at__gte": DAY.replace(day=3, hour=0, minute=0)}),
        ("to=2026-11-02", {"created_at__lt": DAY.replace(day=3, hour=0, minute=0)}),
        (
            "actor=alice&model=tiny-bert&from=2026-11-02&to=2026-11-03",
            {"actor": "alice", "model_name": "tiny-bert", "created_at__date__lte": "2026-11-03"},
        ),
    ],
)
def test_it_filters_events(history, charlie_client, query, conditions):
    want = expected(**conditions)
    assert 0 < len(want) < 12

    html = charlie_client.get(f"/audit/?{query}").content.decode()

    assert rows_of(html) == want
    assert f"{len(want)} event" in html


def test_it_says_so_when_nothing_matches(history, charlie_client):
    html = charlie_client.get("/audit/?actor=nobody-at-all").content.decode()
    assert rows_of(html) == []
    assert '<p class="empty" id="no-events">No event matches.</p>' in html


def test_it_pages_through_events(history, charlie_client):
    append_audit_events({"created_at": DAY, "actor": "bulk"} for _ in range(48))  # 60 in all

    first = charlie_client.get("/audit/?per_page=25").content.decode()
    third = charlie_client.get("/audit/?per_page=25&page=3").content.decode()

    assert rows_of(first) == list(range(60, 35, -1))
    assert rows_of(third) == list(range(10, 0, -1))
    assert "page 3 of 3" in third
    assert 'href="?per_page=25&amp;page=2" rel="prev"' in third
    assert charlie_client.get("/audit/?per_page=25&page=4").status_code == 404


def test_it_renders_a_status_change_and_plain_details_readably(charlie_client, rosa):
    version = make_version("tiny-bert", "1.0")
    from registry.actions import set_version_status

    set_version_status(version, "yanked", actor="rosa", reason="bad weights", user=rosa)

    html = charlie_client.get("/audit/").content.decode()

    assert '<del class="before" title="before">active</del>' in html
    assert '<ins class="after" title="after">yanked</ins>' in html
    assert '<span class="field">reason</span>: bad weights' in html


# --- exports --------------------------------------------------------------------------------


def test_it_exports_every_filtered_event_as_csv_not_only_the_page(history, charlie_client):
    append_audit_events(
        {"created_at": DAY + timedelta(hours=1), "actor": "rosa", "details": {"n": n}}
        for n in range(30)
    )
    want = expected(actor="rosa")
    assert len(want) == 36

    response = charlie_client.get("/audit/?actor=rosa&per_page=25&page=2&format=csv")

    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(
        r'attachment; filename="aegis-audit-\d{8}T\d{6}Z\.csv"', response["Content-Disposition"]
    )
    table = list(csv.DictReader(io.StringIO(streamed(response))))
    assert [int(row["sequence"]) for row in table] == want
    assert {row["actor"] for row in table} == {"rosa"}
    event = AuditEvent.objects.get(sequence=want[0])
    assert table[0]["hash"] == event.hash
    assert json.loads(table[0]["details"]) == event.details
    assert table[0]["created_at"] == event.created_at.isoformat()


def test_it_exports_json_that_recomputes_to_the_same_hashes(history, charlie_client):
    response = charlie_client.get("/audit/?model=tiny-bert&format=json")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].endswith('.json"')
    body = json.loads(streamed(response))
    assert body["filters"] == {"model": "tiny-bert"}
    assert [item["sequence"] for item in body["events"]] == expected(model_name="tiny-bert")
    for item in body["events"]:
        content = {key: value for key, value in item.items() if "hash" not in key}
        assert chain_hash(item["previous_hash"], content) == item["hash"]


def test_it_exports_an_empty_selection_as_an_empty_list(history, charlie_client):
    body = json.loads(streamed(charlie_client.get("/audit/?actor=nobody&format=json")))
    assert body == {"filters": {"actor": "nobody"}, "events": []}
    lines = streamed(charlie_client.get("/audit/?actor=nobody&format=csv")).splitlines()
    assert lines == [
        "sequence,created_at,actor,actor_user,action,object_type,object_id,object_repr,"
        "model_name,details,previous_hash,hash"
    ]


def test_it_keeps_spreadsheet_formulas_inert_in_the_csv(charlie_client):
    audit.record(
        "import.requested",
        actor='=HYPERLINK("http://evil.example")',
        object_type="import",
        object_id=1,
        object_repr="-2+3",
    )
    table = list(csv.DictReader(io.StringIO(streamed(charlie_client.get("/audit/?format=csv")))))
    assert table[0]["actor"] == '\'=HYPERLINK("http://evil.example")'
    assert table[0]["object_repr"] == "'-2+3"


# --- chain status ---------------------------------------------------------------------------


def test_it_caches_the_chain_status_until_someone_checks_now(history, charlie_client):
    assert "All 12 events verify" in charlie_client.get("/audit/").content.decode()
    tamper(5, actor="mallory")
    assert "All 12 events verify" in charlie_client.get("/audit/").content.decode()

    response = charlie_client.post("/audit/chain/")

    assert response.status_code == 302 and response["Location"] == "/audit/"
    html = charlie_client.get("/audit/").content.decode()
    assert '<section id="chain" class="panel chain chain-broken"' in html
    assert "BROKEN at event #5." in html
    assert "event #5 (id " in html and "was changed after it was written" in html


def test_it_answers_check_now_from_htmx_with_the_panel_only(history, charlie_client):
    tamper(3, actor="mallory")

    response = charlie_client.post("/audit/chain/", headers={"HX-Request": "true"})

    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="chain"')
    assert "BROKEN at event #3." in html
    assert "HX-Request" in response["Vary"]


# --- access (Must-show 5) ---------------------------------------------------------------------


@pytest.mark.parametrize("url", ["/audit/", "/audit/?format=csv", "/audit/?format=json"])
def test_it_refuses_a_viewer_the_page_and_the_exports(history, bob_client, url):
    response = bob_client.get(url)

    assert response.status_code == 403
    assert "auditor or registry-admin group" in response.content.decode()
    assert b"rosa" not in response.content


@pytest.mark.parametrize("url", ["/audit/", "/audit/?format=csv", "/audit/?format=json"])
def test_it_refuses_an_importer_too(history, alice_client, url):
    assert alice_client.get(url).status_code == 403


def test_it_refuses_check_now_to_a_viewer(history, bob_client):
    assert bob_client.post("/audit/chain/").status_code == 403


def test_it_sends_anonymous_visitors_to_sign_in(history, client):
    response = client.get("/audit/?format=csv")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/audit/")


@pytest.mark.parametrize("who", ["registry-admin", "superuser"])
def test_it_lets_registry_admins_and_superusers_read_it(history, who):
    user: User = (
        make_user("root", is_superuser=True) if who == "superuser" else make_user("rae", who)
    )
    client = signed_in(user)  # signing staff in is itself an audit event
    assert rows_of(client.get("/audit/").content.decode()) == expected()[:50]
    assert client.get("/audit/?format=csv").status_code == 200


# --- malformed parameters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=2026-13-01", "Enter a date as YYYY-MM-DD."),
        ("to=yesterday", "Enter a date as YYYY-MM-DD."),
        ("from=02/11/2026", "Enter a date as YYYY-MM-DD."),
        ("from=2026-11-05&to=2026-11-01", "The end date is before the start date."),
        ("from=0001-01-01", "Use a date between 1970-01-01 and 9998-12-31."),
        ("to=9999-12-31", "Use a date between 1970-01-01 and 9998-12-31."),
        ("page=0", "Page:"),
        ("page=abc", "Page:"),
        ("page=1000000000000000000000", "Page:"),
        ("per_page=7", "Per page:"),
        ("per_page=100000", "Per page:"),
        ("action=registry.everything", "Action:"),
        ("format=xml", "Format:"),
        ("actor=a%01b", "The actor cannot contain control characters."),
        ("model=a%0Ab", "The model name cannot contain control characters."),
        ("actor=a%00b", "Null characters are not allowed."),
        ("model=" + "m" * 101, "Model:"),
        ("sort=actor", "Unknown query parameter &#x27;sort&#x27;"),
        ("actor=a&actor=b", "given more than once"),
    ],
)
def test_it_answers_400_to_malformed_parameters(history, charlie_client, query, message):
    response = charlie_client.get(f"/audit/?{query}")

    assert response.status_code == 400
    assert message in response.content.decode()


@pytest.mark.parametrize("query", ["format=csv&from=bad", "format=json&action=nope"])
def test_it_answers_400_instead_of_exporting_with_bad_filters(history, charlie_client, query):
    response = charlie_client.get(f"/audit/?{query}")
    assert response.status_code == 400
    assert not response.streaming


def test_it_answers_404_past_the_last_page(history, charlie_client):
    response = charlie_client.get("/audit/?page=2")
    assert response.status_code == 404
    assert "There is no page 2" in response.content.decode()
