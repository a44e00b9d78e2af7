"""Must-show 4, in Chromium: an auditor filters the audit page by actor and date, exports CSV,
and the CSV rows are the page's rows."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime, timedelta

import pytest

from registry.models import AuditEvent
from tests.browser.chromium import (
    Screenshots,
    chromium_page,
    require_chromium,
    sign_in,
    start_worker_thread,
)
from tests.factories import PASSWORD, append_audit_events, make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

FIRST_DAY = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


def page_rows(page) -> list[dict[str, str]]:
    return page.locator("#events tbody tr.event").evaluate_all(
        """rows => rows.map(row => ({
            sequence: row.dataset.sequence,
            created_at: row.querySelector("td.time time").getAttribute("datetime"),
            actor: row.querySelector("td.actor").textContent.trim(),
            action: row.querySelector("td.action").dataset.action,
            object_repr: row.querySelector("td.object").textContent.trim(),
        }))"""
    )


def five_days_of_events() -> list[int]:
    """Five days of edits, verifications and yanks by three people, four events a day each;
    returns rosa's from 2 to 4 November, newest first."""
    append_audit_events(
        {
            "created_at": FIRST_DAY + timedelta(days=day, hours=hour),
            "actor": actor,
            "action": ["registry.version_edited", "verification.passed", "registry.version_yanked"][
                hour % 3
            ],
            "object_repr": f"tiny-bert 1.{day}",
            "details": {"changes": {"license": {"before": "apache-2.0", "after": f"mit-{hour}"}}},
        }
        for day in range(5)
        for hour in range(4)
        for actor in ("rosa", "alice", "bob")
    )
    return list(
        AuditEvent.objects.filter(
            actor="rosa",
            created_at__gte=datetime(2026, 11, 2, tzinfo=UTC),
            created_at__lt=datetime(2026, 11, 5, tzinfo=UTC),
        )
        .order_by("-sequence")
        .values_list("sequence", flat=True)
    )


def assert_the_csv_is_the_page(exported: list[dict[str, str]], shown: list[dict[str, str]]):
    columns = ("sequence", "actor", "action", "object_repr")
    assert [{key: row[key] for key in columns} for row in exported] == [
        {key: row[key] for key in columns} for row in shown
    ]
    assert [datetime.fromisoformat(row["created_at"]) for row in exported] == [
        datetime.fromisoformat(row["created_at"]) for row in shown
    ]


def test_an_auditor_filters_by_actor_and_date_and_the_csv_matches_the_page(live_server, request):
    require_chromium()
    from playwright.sync_api import expect

    make_user("charlie", "auditor")
    wanted = five_days_of_events()
    assert len(wanted) == 12
    shots = Screenshots(request.node.name)

    with chromium_page(live_server.url) as page:
        sign_in(page, "charlie", PASSWORD)
        page.goto("/audit/")
        expect(page.locator("#events tbody tr.event")).to_have_count(50)
        expect(page.locator("#chain-status")).to_contain_text("All 60 events verify")
        shots(page, "audit-page")

        page.fill("#id_actor", "rosa")
        page.fill("#id_from", "2026-11-02")
        page.fill("#id_to", "2026-11-04")
        page.click("#filter-button")
        page.wait_for_url(re.compile(r".*/audit/\?actor=rosa.*from=2026-11-02.*to=2026-11-04"))
        expect(page.locator("#events tbody tr.event")).to_have_count(len(wanted))
        expect(page.locator("#events caption")).to_contain_text("12 events")
        shots(page, "filtered-by-actor-and-date")
        shown = page_rows(page)

        with page.expect_download() as download_info:
            page.click("#export-csv")
        download = download_info.value
        saved = shots.directory / download.suggested_filename
        download.save_as(str(saved))
        shots(page, "after-csv-export")

    assert re.fullmatch(r"aegis-audit-\d{8}T\d{6}Z\.csv", download.suggested_filename)
    with saved.open(newline="", encoding="utf-8") as handle:
        exported = list(csv.DictReader(handle))
    assert [int(row["sequence"]) for row in shown] == wanted
    assert_the_csv_is_the_page(exported, shown)
    assert {row["actor"] for row in exported} == {"rosa"}
    assert [path.name for path in shots.taken] == [
        "01-audit-page.png",
        "02-filtered-by-actor-and-date.png",
        "03-after-csv-export.png",
    ]
    assert all(path.stat().st_size > 1000 for path in shots.taken)


def test_an_auditor_verifies_a_version_in_the_browser_and_finds_the_run_on_the_audit_page(
    aegis, live_server, request
):
    require_chromium()
    from playwright.sync_api import expect

    from imports.actions import ImportOptions, start_import
    from imports.jobs import run_import

    alice = make_user("alice", "importer")
    make_user("charlie", "auditor")
    import_request = start_import(
        ImportOptions(repo_id="acme/tiny-bert", model_name="tiny-bert", version="1.0"),
        actor="alice",
        user=alice,
        enqueue=False,
    )
    assert run_import(import_request.pk) == "succeeded"
    shots = Screenshots(request.node.name)

    with chromium_page(live_server.url) as page:
        sign_in(page, "charlie", PASSWORD)
        page.goto("/registry/tiny-bert/1.0/")
        expect(page.locator("#timeline li.event").first).to_have_attribute(
            "data-action", "import.requested"
        )
        shots(page, "provenance-page")

        page.click("#verify-button")  # htmx: the run is queued; the panel polls it
        expect(page.locator("#verification")).to_have_attribute("data-state", "queued")
        start_worker_thread("default").join(timeout=120)  # a worker runs the job
        # the poll swaps in the result panel and the timeline
        expect(page.locator("#verification")).to_have_attribute("data-result", "passed")
        expect(page.locator("#verification-checks li")).to_have_count(8)
        expect(page.locator("#timeline li.event").last).to_have_attribute(
            "data-action", "verification.passed"
        )
        expect(page).to_have_url(re.compile(r"/registry/tiny-bert/1\.0/$"))
        shots(page, "verified")

        page.click("#audit-link")
        page.select_option("#id_action", "verification.passed")
        page.click("#filter-button")
        rows = page.locator("#events tbody tr.event")
        expect(rows).to_have_count(1)
        expect(rows.first.locator("td.actor")).to_have_text("charlie")
        expect(rows.first.locator("td.object a")).to_have_attribute(
            "href", "/registry/tiny-bert/1.0/"
        )
        shots(page, "audit-page-shows-the-run")

    event = AuditEvent.objects.get(action="verification.passed")
    assert event.actor == "charlie"
    assert len(shots.taken) == 3
