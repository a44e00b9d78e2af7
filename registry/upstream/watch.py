"""Checking registered models against their Hub repos: one model, or a pass over all.

The baseline is a model's newest version (by import time) that was not rejected; the tracked
revision is the branch or tag its newest versions were imported from (a version imported from a
pinned commit follows the revision of the one before it; ``main`` when none names one).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from aegis_catalog import services
from aegis_catalog.lib.hub import COMMIT_RE, HubClient, HubError
from registry.actions import SYSTEM_ACTOR
from registry.models import ImportPolicy, ModelVersion, RegisteredModel, UpstreamState
from registry.upstream.actions import record_upstream_check, record_upstream_error
from registry.upstream.diff import Baseline, compare
from registry.upstream.fetch import Retries, UpstreamUnavailable, read_upstream

logger = logging.getLogger(__name__)
DEFAULT_REVISION = "main"


@dataclass(frozen=True)
class CheckResult:
    """One model's check: ``outcome`` is a state (in_sync, changed, gone), ``error`` or
    ``skipped`` (no version to compare with); ``detail`` says more in words."""

    model_name: str
    outcome: str
    needs_attention: bool = False
    detail: str = ""
    rate_limited: bool = False


def tracked_revision(model: RegisteredModel) -> str:
    """The branch or tag the model's newest versions follow; ``main`` when none names one."""
    revisions = (
        ModelVersion.objects.filter(model=model)
        .order_by("-imported_at", "-pk")
        .values_list("source_revision", flat=True)
    )
    for revision in revisions[:50]:
        if revision and not COMMIT_RE.fullmatch(revision):
            return revision
    return DEFAULT_REVISION


def baseline_of(model: RegisteredModel, version: ModelVersion, revision: str) -> Baseline:
    options = version.import_options if isinstance(version.import_options, dict) else {}
    return Baseline(
        model_name=model.name,
        version=version.version,
        repo_id=version.source_repo,
        revision=revision,
        commit=version.source_commit,
        files=list(version.manifest or []),
        include=list(options.get("include") or []),
        exclude=list(options.get("exclude") or []),
        license=version.license,
        gated=model.gated,
        card_data=model.card_data if isinstance(model.card_data, dict) else {},
    )


def check_model(
    model_id: int,
    *,
    actor: str = SYSTEM_ACTOR,
    client: HubClient | None = None,
    retries: Retries | None = None,
) -> CheckResult:
    """Compare one model's newest version with its Hub repo now, and record what was found
    (or why nothing could be found: the Hub's error, retried first)."""
    model = RegisteredModel.objects.filter(pk=model_id).first()
    if model is None:
        return CheckResult(f"#{model_id}", "skipped", detail="no such model")
    # A rejected version's files were removed: the registry holds what came before it.
    version = (
        model.versions.exclude(status=ModelVersion.Status.REJECTED)
        .order_by("-imported_at", "-pk")
        .first()
    )
    if version is None:
        return CheckResult(model.name, "skipped", detail="no version to compare with")
    revision = tracked_revision(model)
    baseline = baseline_of(model, version, revision)
    try:
        upstream = read_upstream(
            client or services.hub_client(retries=0),
            baseline.repo_id,
            revision,
            baseline.commit,
            retries or Retries.from_settings(),
        )
    except (UpstreamUnavailable, HubError) as error:
        record_upstream_error(model, error=str(error))
        logger.info("upstream check of %s failed: %s", model.name, error)
        rate_limited = isinstance(error, UpstreamUnavailable) and error.rate_limited
        return CheckResult(model.name, "error", detail=str(error), rate_limited=rate_limited)
    diff = compare(baseline, upstream, ImportPolicy.current().rules())
    commit = upstream.model.commit if upstream.model is not None else ""
    record_upstream_check(
        model, version, revision=revision, upstream_commit=commit, diff=diff, actor=actor
    )
    state = UpstreamState.objects.get(model=model).state
    return CheckResult(model.name, state, bool(diff.attention), ", ".join(sorted(diff.changes)))


def watch_pass(
    *,
    names: Iterable[str] = (),
    actor: str = SYSTEM_ACTOR,
    client: HubClient | None = None,
    retries: Retries | None = None,
) -> list[CheckResult]:
    """Check every registered model (or those ``names``), in name order. After a check the
    Hub still rate-limited, the rest wait for the next pass (asking now would be refused too)."""
    models = RegisteredModel.objects.order_by("name")
    wanted = list(names)
    if wanted:
        models = models.filter(name__in=wanted)
    client = client or services.hub_client(retries=0)
    results: list[CheckResult] = []
    for model_id, name in models.values_list("pk", "name"):
        if results and results[-1].rate_limited:
            results.append(CheckResult(name, "skipped", detail="the Hub is rate limiting"))
            continue
        results.append(check_model(model_id, actor=actor, client=client, retries=retries))
    return results
