"""Which registered model and version a Hub-style repo id and revision name.

A model answers as ``<AEGIS_HF_NAMESPACE>/<name>``, and under the Hub repo id its versions were
imported from (when several models came from one repo, the one a registry admin chose, else
the first registered). A revision is a version name, the served ``sha`` of a version, the
upstream commit a version was imported from, or ``main`` (the newest active version).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from registry.models import ModelVersion, RegisteredModel
from serving.models import HubRepoChoice

SHA_RE = re.compile(r"^[0-9a-f]{40}$")
MAIN = "main"


class NotServed(Exception):
    """Why a repo id, revision or file is not served: ``code`` is the Hub's ``X-Error-Code``
    (the client raises by it), ``status`` the HTTP status."""

    def __init__(self, message: str, *, status: int = 404, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def repo_not_found(repo_id: str) -> NotServed:
    return NotServed(
        f"No registered model answers as {repo_id}: Aegis serves only models imported into its "
        "registry.",
        code="RepoNotFound",
    )


def revision_refused(message: str, *, status: int) -> NotServed:
    """A refusal of a revision the client must surface: with ``RevisionNotFound``,
    ``snapshot_download`` raises instead of falling back to what it cached before."""
    return NotServed(message, status=status, code="RevisionNotFound")


def served_sha(version: ModelVersion) -> str:
    """The ``sha`` a version answers with: unique per version (from its tarball's sha256),
    never an upstream commit, which several versions may share."""
    return version.sha256[:40]


def repo_commit(version: ModelVersion, revision: str) -> str:
    """``X-Repo-Commit`` of a file: the 40-hex revision asked for (a served sha, or an upstream
    commit: the client keeps the files under the commit it asked for), else the served sha."""
    return revision if SHA_RE.match(revision) else served_sha(version)


@dataclass(frozen=True)
class Repo:
    """A repo id as asked for, and the registered model and versions behind it."""

    repo_id: str
    model: RegisteredModel
    versions: QuerySet[ModelVersion]


def find_repo(repo_id: str) -> Repo:
    namespace, _, name = repo_id.partition("/")
    versions = ModelVersion.objects.select_related("model", "signing_key")
    if namespace == settings.AEGIS_HF_NAMESPACE:
        model = RegisteredModel.objects.filter(name=name).first()
        if model is not None:
            return Repo(repo_id, model, versions.filter(model=model))
        raise repo_not_found(repo_id)
    from_repo = versions.filter(source_repo=repo_id)
    choice = HubRepoChoice.objects.select_related("model").filter(repo_id=repo_id).first()
    if choice is not None and from_repo.filter(model=choice.model).exists():
        return Repo(repo_id, choice.model, from_repo.filter(model=choice.model))
    first = from_repo.order_by("model__created_at", "model__pk").first()
    if first is None:
        raise repo_not_found(repo_id)
    return Repo(repo_id, first.model, from_repo.filter(model=first.model))


def find_version(repo: Repo, revision: str) -> ModelVersion:
    """The version ``revision`` names among ``repo``'s versions (yanked ones included: the
    caller refuses them with their reason); NotServed when none does."""
    newest = repo.versions.order_by("-imported_at", "-pk")
    if revision == MAIN:
        found = newest.filter(status=ModelVersion.Status.ACTIVE).first()
        if found is None:
            raise revision_refused(
                f"{repo.repo_id} has no active version to serve as main.", status=404
            )
        return found
    found = newest.filter(version=revision).first()
    if found is None and SHA_RE.match(revision):
        found = newest.filter(sha256__startswith=revision).first()
        if found is None:
            servable = newest.exclude(status__in=ModelVersion.UNSERVED)
            found = (
                servable.filter(source_commit=revision).first()
                or newest.filter(source_commit=revision).first()
            )
    if found is None:
        raise revision_refused(
            f"{repo.repo_id} has no version, served sha or imported commit {revision!r}.",
            status=404,
        )
    return found
