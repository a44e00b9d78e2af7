"""What people see of the upstream watch: the badge on the registry list and the model page, the
readable diff, "Check upstream now" (registry admins, a queued job the panel follows) and the
one-click import of the new commit (importers; the import policy applies)."""

from __future__ import annotations

import re

import django_rq
import pytest
from django.test import TestCase

from imports.jobs import run_import
from imports.models import ImportRequest
from registry.models import AuditEvent, ModelVersion, RegisteredModel, UpstreamState
from registry.upstream.fetch import Retries
from registry.upstream.watch import watch_pass
from tests.factories import HTMX, make_registry_admin, signed_in
from tests.registry.upstream_support import (
    NEW_WEIGHTS,
    REPO,
    WEIGHTS,
    import_watched_repo,
    relicense_and_retrain,
)

pytestmark = pytest.mark.django_db
PAGE = "/registry/watched/"
NO_WAIT = Retries(retries=0, wait=0, max_wait=0)


@pytest.fixture
def upstream(aegis, fresh_hub_double):
    import_watched_repo(aegis, fresh_hub_double)
    return fresh_hub_double


@pytest.fixture
def rosa_client(rosa):
    return signed_in(rosa)


def form_fields(html: str, form_id: str) -> dict[str, str]:
    """The form's action and the name and value of each of its inputs."""
    start = html.index(f'id="{form_id}"')
    form = html[html.rindex("<form", 0, start) : html.index("</form>", start)]
    fields = dict(re.findall(r'name="([a-z_]+)" value="([^"]*)"', form))
    action = re.search(r'action="([^"]+)"', form)
    assert action is not None
    return {**fields, "action": action.group(1)}


def test_an_unchecked_and_an_in_sync_model_show_no_badge(upstream, bob_client):
    html = bob_client.get(PAGE).content.decode()
    assert "Not compared with the Hub yet" in html
    assert 'class="status upstream' not in html

    watch_pass(retries=NO_WAIT)

    html = bob_client.get(PAGE).content.decode()
    assert 'id="upstream-in-sync"' in html and 'class="status upstream' not in html
    assert "data-upstream" not in bob_client.get("/registry/").content.decode()


def test_the_list_and_the_model_page_show_the_badge_and_a_readable_diff(upstream, bob_client):
    before = upstream.resolve(REPO)
    after = relicense_and_retrain(upstream)
    watch_pass(retries=NO_WAIT)

    listing = bob_client.get("/registry/").content.decode()
    row = listing[listing.index(f'href="{PAGE}"') :]
    row = row[: row.index("</tr>")]
    assert '<span class="status upstream-attention" data-upstream="changed">needs attention' in row

    html = bob_client.get(PAGE).content.decode()
    assert 'data-upstream="changed">needs attention</a>' in html  # the badge by the name
    assert f'<code>{before[:12]}</code> → <code id="upstream-new-commit">{after}</code>' in html
    assert "Relicense and retrain" in html
    license_row = html[html.index('id="upstream-license"') :]
    license_row = license_row[: license_row.index("</tr>")]
    assert "<del>mit</del>" in license_row and "<ins>cc-by-nc-4.0</ins>" in license_row
    assert "CC-BY-NC-4.0 is not on the allow-list" in html
    start = html.index('id="upstream-files"')
    files = html[start : html.index("</table>", start)]
    weights = files[files.index("<code>model.safetensors</code>") :]
    weights = weights[: weights.index("</tr>")]
    sizes = re.findall(r'<td class="num">([^<]+)</td>', weights)
    assert sizes == [f"{len(WEIGHTS)}\xa0bytes", f"{len(NEW_WEIGHTS)}\xa0bytes"]
    assert '<tr data-change="added"><td>added</td><td><code>extra.json</code>' in files
    assert '<tr data-change="removed"><td>removed</td><td><code>notes.txt</code>' in files
    # A viewer neither checks nor imports.
    assert 'id="upstream-check-button"' not in html and 'id="upstream-import"' not in html


def test_a_gone_repo_says_so_and_needs_attention(upstream, bob_client):
    upstream.delete_repo(REPO)
    watch_pass(retries=NO_WAIT)

    html = bob_client.get(PAGE).content.decode()

    assert 'data-upstream="gone">needs attention' in html
    assert "The repo <code>acme/watched</code> is gone from the Hub" in html
    assert 'id="upstream-import"' not in html


def test_a_failed_check_shows_its_error_and_no_change(upstream, bob_client):
    upstream.fail_api_with = 503
    watch_pass(retries=NO_WAIT)

    html = bob_client.get(PAGE).content.decode()

    assert 'id="upstream-error"' in html and "HTTP 503" in html
    assert "Nothing was marked changed" in html and 'class="status upstream' not in html


def test_only_registry_admins_may_check_now(upstream, alice_client, bob_client):
    for client in (alice_client, bob_client):
        response = client.post(f"{PAGE}-/upstream/check/")
        assert response.status_code == 403
    assert not UpstreamState.objects.exists()


def test_check_now_queues_a_job_the_panel_follows(upstream, rosa_client):
    relicense_and_retrain(upstream, "apache-2.0")
    queue = django_rq.get_queue("default")
    queue.empty()
    html = rosa_client.get(PAGE).content.decode()
    assert 'id="upstream-check-button"' in html

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = rosa_client.post(f"{PAGE}-/upstream/check/", headers=HTMX)

    assert response.status_code == 200 and "HX-Request" in response["Vary"]
    panel = response.content.decode()
    assert 'id="upstream-pending"' in panel and "asked by rosa" in panel
    assert f'hx-get="{PAGE}-/upstream/"' in panel
    [job] = queue.get_jobs()
    model = RegisteredModel.objects.get(name="watched")
    assert (job.func_name, job.args) == ("registry.jobs.upstream_check_job", (model.pk, "rosa"))
    job.perform()
    queue.empty()

    polled = rosa_client.get(f"{PAGE}-/upstream/", headers=HTMX).content.decode()

    assert 'id="upstream-pending"' not in polled and "hx-get" not in polled
    assert "<ins>apache-2.0</ins>" in polled
    assert '<span id="upstream-badge" hx-swap-oob="true">' in polled
    assert 'data-upstream="changed">changed upstream</a>' in polled
    [event] = AuditEvent.objects.filter(action="upstream.changed")
    assert event.actor == "rosa"
    assert rosa_client.get(f"{PAGE}-/upstream/").status_code == 303  # without htmx: the page
    assert rosa_client.get(f"{PAGE}-/upstream/", {"x": "1"}, headers=HTMX).status_code == 400


def test_check_now_without_htmx_goes_back_to_the_page(upstream, settings):
    rosa_client = signed_in(make_registry_admin("rosa"))
    django_rq.get_queue("default").empty()

    with TestCase.captureOnCommitCallbacks(execute=True):
        response = rosa_client.post(f"{PAGE}-/upstream/check/")

    assert response.status_code == 303 and response["Location"] == f"{PAGE}#upstream"
    assert "A check of acme/watched on the Hub is queued" in rosa_client.get(PAGE).content.decode()
    django_rq.get_queue("default").empty()


def test_an_importer_imports_the_new_commit_in_one_click_under_the_usual_policy(
    upstream, alice_client
):
    after = relicense_and_retrain(upstream)  # CC-BY-NC-4.0: not on the allow-list
    watch_pass(retries=NO_WAIT)
    html = alice_client.get(PAGE).content.decode()
    assert f"Import {after[:12]} as a new version" in html
    form = form_fields(html, "upstream-import")
    assert form["action"] == "/hub/acme/watched/import/"
    assert (form["model_name"], form["revision"], form["register"]) == ("watched", after, "on")
    assert form["version"].endswith(f"-{after[:7]}")

    response = alice_client.post(form.pop("action"), form)

    request = ImportRequest.objects.latest("pk")
    assert response.status_code == 302 and response["Location"] == f"/imports/{request.pk}/"
    assert (request.model_name, request.revision, request.actor) == ("watched", after, "alice")
    run_import(request.pk)
    request.refresh_from_db()
    assert request.status == ImportRequest.Status.FAILED
    assert request.error_code == "policy:license"
    assert not ModelVersion.objects.filter(source_commit=after).exists()


def test_the_imported_new_commit_brings_the_model_back_in_sync(upstream, alice_client):
    after = relicense_and_retrain(upstream, "apache-2.0")
    watch_pass(retries=NO_WAIT)
    form = form_fields(alice_client.get(PAGE).content.decode(), "upstream-import")

    alice_client.post(form.pop("action"), form)
    run_import(ImportRequest.objects.latest("pk").pk)
    version = ModelVersion.objects.get(source_commit=after)
    watch_pass(retries=NO_WAIT)

    html = alice_client.get(PAGE).content.decode()
    assert version.source_revision == after and version.version == form["version"]
    assert 'id="upstream-in-sync"' in html and 'id="upstream-import"' not in html
    assert UpstreamState.objects.get().tracked_revision == "main"
    assert AuditEvent.objects.filter(action="upstream.in_sync").count() == 1
