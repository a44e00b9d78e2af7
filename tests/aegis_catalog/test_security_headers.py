"""Browser-facing security: a Content-Security-Policy that runs only the app's own scripts,
X-Frame-Options DENY, CSRF on every POST (htmx ones too), secure cookies and a clean
`check --deploy` in production, and no CSP violation in Chromium."""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from imports import actions
from imports.actions import ImportOptions
from tests.factories import PASSWORD, make_user, make_version

pytestmark = pytest.mark.django_db

BASE_DIR = Path(__file__).resolve().parents[2]
TEMPLATES = BASE_DIR / "templates"


def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    parsed = {}
    for part in policy.split(";"):
        name, *values = part.split()
        parsed[name] = values
    return parsed


@pytest.fixture
def pages(alice, hub):
    make_version("bert", "1.0")
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny", "1"), actor="alice", enqueue=False
    )
    return [
        "/",
        "/?q=bert",
        "/hub/acme/tiny-bert/",
        "/imports/",
        f"/imports/{request.pk}/",
        "/registry/",
        "/registry/bert/1.0/",
    ]


def test_every_page_allows_only_its_own_scripts_and_cannot_be_framed(alice_client, pages, client):
    responses = [alice_client.get(url) for url in pages] + [client.get("/accounts/login/")]
    for response in responses:
        assert response.status_code == 200
        policy = directives(response)
        assert policy["script-src"] == ["'self'"]
        assert policy["style-src"] == ["'self'"]
        assert policy["default-src"] == ["'self'"]
        assert policy["frame-ancestors"] == ["'none'"]
        assert policy["object-src"] == ["'none'"]
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"


def test_error_pages_carry_the_policy_too(alice_client, hub):
    response = alice_client.get("/imports/999999/")
    assert response.status_code == 404
    assert directives(response)["script-src"] == ["'self'"]


def test_only_the_staff_job_dashboard_allows_its_inline_scripts(hub):
    admin = make_user("root", is_staff=True, is_superuser=True)
    staff = Client()
    staff.force_login(admin)
    response = staff.get("/rq/")
    assert response.status_code == 200
    assert "'unsafe-inline'" in directives(response)["script-src"]


def test_no_template_has_inline_script_style_or_event_handlers():
    offenders = []
    for template in TEMPLATES.rglob("*.html"):
        text = template.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text):
            offenders.append(f"{template}: inline <script>")
        if re.search(r"<style\b|\sstyle=", text):
            offenders.append(f"{template}: inline style")
        if re.search(r"\son[a-z]+\s*=", text) or "hx-on" in text or "javascript:" in text:
            offenders.append(f"{template}: inline event handler")
    assert offenders == []


def test_the_page_gives_htmx_the_csrf_token_and_keeps_htmx_from_injecting_styles(alice_client, hub):
    page = alice_client.get("/imports/").content.decode()
    match = re.search(r"<body hx-headers='([^']+)'", page)
    assert match is not None
    assert json.loads(match.group(1))["X-CSRFToken"]
    config = re.search(r'<meta name="htmx-config" content=\'([^\']+)\'', page)
    assert config is not None
    assert json.loads(config.group(1))["includeIndicatorStyles"] is False


def csrf_client(user) -> Client:
    checked = Client(enforce_csrf_checks=True)
    checked.force_login(user)
    return checked


def test_every_post_without_the_csrf_token_is_refused(alice, hub):
    make_version("bert", "1.0")
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny", "1"), actor="alice", enqueue=False
    )
    checked = csrf_client(alice)
    for url in (
        "/hub/acme/tiny-bert/import/",
        f"/imports/{request.pk}/retry/",
        f"/imports/{request.pk}/cancel/",
        f"/imports/{request.pk}/override/",
        "/registry/bert/1.0/verify/",
        "/audit/chain/",
        "/accounts/logout/",
    ):
        plain = checked.post(url, {"model_name": "x", "version": "1"})
        htmx = checked.post(url, {"model_name": "x"}, headers={"HX-Request": "true"})
        assert plain.status_code == 403, url
        assert htmx.status_code == 403, url
    request.refresh_from_db()
    assert request.status == "queued"  # nothing was cancelled


def test_an_htmx_post_with_the_token_from_hx_headers_goes_through(alice, hub):
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny", "1"), actor="alice", enqueue=False
    )
    checked = csrf_client(alice)
    page = checked.get(f"/imports/{request.pk}/").content.decode()
    body = re.search(r"<body hx-headers='([^']+)'", page)
    assert body is not None
    headers = json.loads(body.group(1))

    response = checked.post(
        f"/imports/{request.pk}/cancel/", headers={"HX-Request": "true", **headers}
    )

    assert response.status_code in (200, 303)
    request.refresh_from_db()
    assert request.status == "cancelled"


def production_environment(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("VAULT_", "AEGIS_", "DJANGO_", "DATABASE_", "REDIS_", "AWS_"))
    }
    env.update(
        AEGIS_ENV="production",
        AEGIS_VAR_DIR=str(tmp_path),
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DATABASE_URL=f"sqlite:///{tmp_path}/aegis.sqlite3",
        REDIS_URL="redis://127.0.0.1:6379/0",
        VAULT_ADDR="https://vault.example.org:8200",
        DJANGO_ALLOWED_HOSTS="aegis.example.org",
    )
    env.update(extra)
    return env


def test_check_deploy_passes_with_production_settings(tmp_path):
    run = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        env=production_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "no issues" in run.stdout


def test_production_cookies_are_secure_and_development_ones_work_over_http(tmp_path):
    show = (
        "import json, aegis_catalog.settings as s; print(json.dumps([s.SESSION_COOKIE_SECURE, "
        "s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_HTTPONLY, s.X_FRAME_OPTIONS]))"
    )
    production = subprocess.run(
        [sys.executable, "-c", show],
        cwd=BASE_DIR,
        env=production_environment(tmp_path),
        capture_output=True,
        text=True,
    )
    assert production.returncode == 0, production.stderr
    assert json.loads(production.stdout) == [True, True, True, "DENY"]
    development = production_environment(tmp_path, AEGIS_ENV="development", DJANGO_DEBUG="1")
    run = subprocess.run(
        [sys.executable, "-c", show], cwd=BASE_DIR, env=development, capture_output=True, text=True
    )
    assert json.loads(run.stdout)[:2] == [False, False]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_chromium_reports_no_csp_violation_on_the_main_pages(hub, live_server):
    from tests.browser.chromium import chromium_page, require_chromium, sign_in

    require_chromium()
    make_user("alice", "importer")
    make_version("bert", "1.0")
    request = actions.start_import(
        ImportOptions("acme/tiny-bert", "tiny", "1"), actor="alice", enqueue=False
    )
    problems: list[str] = []
    with chromium_page(live_server.url) as page:
        page.on(
            "console",
            lambda message: (
                problems.append(message.text)
                if "Content Security Policy" in message.text or "Refused to" in message.text
                else None
            ),
        )
        page.on("pageerror", lambda error: problems.append(str(error)))
        sign_in(page, "alice", PASSWORD)
        for url in (
            "/",
            "/hub/acme/tiny-bert/",
            "/imports/",
            f"/imports/{request.pk}/",
            "/registry/",
            "/registry/bert/1.0/",
        ):
            page.goto(url)
            page.wait_for_load_state("networkidle")
            assert page.evaluate("typeof htmx") == "object", url  # our own script did run
        # An htmx search (indicator shown, results swapped in) under the policy.
        page.goto("/")
        page.fill("input[name=q]", "bert")
        page.keyboard.press("Enter")
        page.wait_for_load_state("networkidle")
        assert page.locator("#results").count() == 1
    assert problems == [], problems
