"""Which registered model answers for a Hub repo id at ``/hf/``: chosen by a registry admin,
audited in the same transaction."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from registry import audit
from registry.models import ModelVersion, RegisteredModel
from serving.models import HubRepoChoice
from serving.names import NotServed, find_repo


class ChoiceRefused(Exception):
    """The model cannot answer for that repo id (none of its versions came from it)."""


def _answering(repo_id: str) -> str | None:
    try:
        return find_repo(repo_id).model.name
    except NotServed:  # no model answers for it yet
        return None


@transaction.atomic
def choose_model_for_hub_repo(
    repo_id: str, model: RegisteredModel | None, *, actor: str, user: Any = None
) -> HubRepoChoice | None:
    """Make ``model`` answer for ``repo_id`` (None: the first registered answers again)."""
    if (
        model is not None
        and not ModelVersion.objects.filter(model=model, source_repo=repo_id).exists()
    ):
        raise ChoiceRefused(f"No version of {model.name} was imported from {repo_id}.")
    before = _answering(repo_id)
    if model is None:
        HubRepoChoice.objects.filter(repo_id=repo_id).delete()
        choice = None
    else:
        choice, _ = HubRepoChoice.objects.update_or_create(
            repo_id=repo_id, defaults={"model": model, "chosen_by": actor[:300]}
        )
    audit.record(
        audit.Action.HUB_REPO_CHOSEN,
        actor=actor,
        user=user,
        object_type="hub_repo",
        object_id=repo_id[:100],
        object_repr=repo_id,
        model_name=model.name if model is not None else "",
        details={"repo_id": repo_id, "before": before, "after": _answering(repo_id)},
    )
    return choice
