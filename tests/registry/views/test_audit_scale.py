"""Must-show 6: with 100,000 audit events the filtered audit page answers with a fixed number of
queries, and every query it sends for a filter reads an index (PostgreSQL: EXPLAIN; SQLite:
EXPLAIN QUERY PLAN)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.audit import Action
from registry.models import AuditEvent
from tests.factories import append_audit_events

pytestmark = pytest.mark.django_db

EVENTS = 100_000
RARE = 150  # the first events, by one actor who never acts again: the oldest rows
ACTORS = [f"actor-{number:02d}" for number in range(20)]
MODELS = [f"model-{number:03d}" for number in range(500)]
ACTIONS = list(Action.values)
START = datetime(2026, 1, 1, tzinfo=UTC)

# name -> (query string, the matching events as ORM conditions)
FILTERS: dict[str, tuple[str, dict[str, Any]]] = {
    "actor": ("actor=actor-07", {"actor": "actor-07"}),
    "rare actor": ("actor=rare-auditor", {"actor": "rare-auditor"}),
    "action": ("action=verification.failed", {"action": "verification.failed"}),
    "model": ("model=model-123", {"model_name": "model-123"}),
    "date range": (
        "from=2026-02-01&to=2026-02-02",
        {
            "created_at__gte": START.replace(month=2),
            "created_at__lt": START.replace(month=2, day=3),
        },
    ),
    "actor and date range": (
        "actor=actor-07&from=2026-02-01&to=2026-02-02",
        {
            "actor": "actor-07",
            "created_at__gte": START.replace(month=2),
            "created_at__lt": START.replace(month=2, day=3),
        },
    ),
}
PAGE_SIZES = (25, 100)


def many_events() -> None:
    append_audit_events(
        (
            {
                "created_at": START + timedelta(minutes=index),
                "actor": "rare-auditor" if index < RARE else ACTORS[index % len(ACTORS)],
                "action": ACTIONS[index % len(ACTIONS)],
                "model_name": MODELS[index % len(MODELS)],
                "object_repr": f"{MODELS[index % len(MODELS)]} 1.0",
                "details": {"index": index},
            }
            for index in range(EVENTS)
        ),
        batch_size=10_000,
    )


def plan_of(sql: str) -> str:
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    with connection.cursor() as cursor:
        cursor.execute(prefix + sql)
        return "\n".join(" ".join(str(part) for part in row) for row in cursor.fetchall())


def assert_reads_an_index(sql: str, name: str) -> None:
    plan = plan_of(sql)
    if connection.vendor == "postgresql":
        assert "Index" in plan, f"{name}: {sql}\n{plan}"
        assert "Seq Scan on registry_auditevent" not in plan, f"{name}: {sql}\n{plan}"
        if name == "rare actor":
            # A backward walk of the sequence would read nearly every row before it found
            # these: the actor's own index must answer.
            assert "Index Cond: ((actor)::text = 'rare-auditor'::text)" in plan, plan
    else:
        steps = [line for line in plan.splitlines() if "registry_auditevent" in line]
        assert steps, f"{name}: {sql}\n{plan}"
        for step in steps:
            # SQLite says "USING INDEX", or "USING COVERING INDEX" when the index alone answers
            assert re.search(r"USING (COVERING )?INDEX", step), f"{name}: {sql}\n{plan}"


def test_it_answers_100k_events_with_fixed_queries_that_read_indexes(charlie_client):
    many_events()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    charlie_client.get("/audit/?actor=nobody")  # the session and groups, once
    assert charlie_client.post("/audit/chain/").status_code == 302  # check and cache the chain
    assert f"All {EVENTS} events verify" in charlie_client.get("/audit/").content.decode()

    counts: dict[str, int] = {}
    for name, (query, conditions) in FILTERS.items():
        matching = list(
            AuditEvent.objects.filter(**conditions)
            .order_by("-sequence")
            .values_list("sequence", flat=True)[: max(PAGE_SIZES)]
        )
        total = AuditEvent.objects.filter(**conditions).count()
        assert total > max(PAGE_SIZES), name
        assert total < EVENTS / 10, name
        for size in PAGE_SIZES:
            with CaptureQueriesContext(connection) as captured:
                response = charlie_client.get(f"/audit/?{query}&per_page={size}")
            html = response.content.decode()
            assert response.status_code == 200, name
            shown = [int(n) for n in re.findall(r'<tr class="event" data-sequence="(\d+)"', html)]
            assert shown == matching[:size], name
            assert f"{total} events" in html, name
            counts[f"{name}, {size} per page"] = len(captured)
            audit_queries = [q["sql"] for q in captured if "registry_auditevent" in q["sql"]]
            assert len(audit_queries) == 2, audit_queries  # the count and the page
            for sql in audit_queries:
                assert_reads_an_index(sql, name)

    # session, user, groups, count, page: the same for every filter and page size
    assert set(counts.values()) == {5}, counts
