"""What changed upstream since a version was imported: the comparison, and the diff's JSON.

Plain Python (no queries, no network): ``compare`` takes what the registry holds of the version
(``Baseline``) and what the Hub answers now (``Upstream``). Only upstream facts go into the
diff's changes, so the same Hub answers always give the same changes; whether they need a
person's attention depends on the import policy too, and is kept beside them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aegis_catalog.lib.hub import HubCommit, HubFile, HubModel, matching_files
from registry.card import card_metadata
from registry.policy import (
    ImportRules,
    PolicyFinding,
    PolicyViolation,
    canonical_license,
    card_licenses,
    check_licenses,
)

GONE_REPO, GONE_REVISION = "repo", "revision"
SHOWN_VALUE_LIMIT = 200
LFS_SHA256, GIT_BLOB = "lfs-sha256", "git-blob-sha1"


@dataclass(frozen=True)
class Baseline:
    """What the registry holds of the version the watch compares with."""

    model_name: str
    version: str
    repo_id: str
    revision: str  # the tracked branch or tag
    commit: str
    files: Sequence[Mapping[str, Any]]  # the version's manifest: path, size, sha256, hub digest
    include: Sequence[str]
    exclude: Sequence[str]
    license: str
    gated: str
    card_data: Mapping[str, Any]


@dataclass(frozen=True)
class Upstream:
    """What the Hub answers now: the model at the tracked revision, or why there is none
    (``gone``: the repo or the revision); ``commits``: the revision's newest commits, newest
    first, None when the Hub lists none."""

    model: HubModel | None
    gone: str = ""
    commits: tuple[HubCommit, ...] | None = None


@dataclass(frozen=True)
class UpstreamDiff:
    """The changes since the baseline (``changes``: JSON, only what is present), and the
    reasons they need a person's attention."""

    changes: dict[str, Any] = field(default_factory=dict)
    attention: tuple[str, ...] = ()

    @property
    def is_empty(self) -> bool:
        return not self.changes

    @property
    def gone(self) -> str:
        return str(self.changes.get("gone") or "")

    def to_json(self) -> dict[str, Any]:
        data = dict(self.changes)
        if self.attention:
            data["attention"] = list(self.attention)
        return data

    @classmethod
    def from_json(cls, data: Any) -> UpstreamDiff:
        if not isinstance(data, dict):
            return cls()
        changes = {key: value for key, value in data.items() if key != "attention"}
        return cls(changes, tuple(str(item) for item in data.get("attention") or ()))


def compare(baseline: Baseline, upstream: Upstream, rules: ImportRules) -> UpstreamDiff:
    """The changes from ``baseline`` to ``upstream``, judged against ``rules`` (a license the
    policy would refuse, the repo or revision gone: attention)."""
    if upstream.model is None:
        return _gone(baseline, upstream.gone or GONE_REPO)
    model = upstream.model
    changes: dict[str, Any] = {}
    if model.repo_id.lower() != baseline.repo_id.lower():
        changes["renamed_to"] = model.repo_id
    if model.commit != baseline.commit:
        changes["commit"] = {
            "revision": baseline.revision,
            "before": baseline.commit,
            "after": model.commit,
            "time": model.commit_time.isoformat(),
        }
        changes.update(_new_commits(upstream.commits, baseline.commit))
    files = compare_files(baseline, model.files)
    if files:
        changes["files"] = files
    metadata = card_metadata(model)
    attention: list[str] = []
    if not _same_license(baseline.license, metadata.license):
        changes["license"] = {"before": baseline.license, "after": metadata.license}
        attention += _license_attention(model, rules)
    if baseline.gated != metadata.gated:
        changes["gated"] = {"before": baseline.gated, "after": metadata.gated}
    card = _card_changes(baseline.card_data, _plain(model.card_data))
    if card:
        changes["card"] = card
    return UpstreamDiff(changes, tuple(attention))


def _gone(baseline: Baseline, gone: str) -> UpstreamDiff:
    if gone == GONE_REVISION:
        reason = (
            f"{baseline.repo_id} has no branch or tag {baseline.revision!r} any more: "
            "there is nothing to follow"
        )
    else:
        reason = (
            f"{baseline.repo_id} is gone from the Hub (deleted, or made private): the "
            "registered versions are the only copies left"
        )
    return UpstreamDiff({"gone": gone}, (reason,))


def _new_commits(commits: tuple[HubCommit, ...] | None, since: str) -> dict[str, Any]:
    """The commits after ``since``, newest first; ``new_commits_complete`` when the listing
    reached ``since`` (else there are more than it shows, or history was rewritten)."""
    if commits is None:
        return {}
    listed: list[dict[str, Any]] = []
    for item in commits:
        if item.commit == since:
            return {"new_commits": listed, "new_commits_complete": True}
        listed.append(
            {
                "commit": item.commit,
                "title": item.title,
                "date": item.created_at.isoformat() if item.created_at else "",
                "authors": list(item.authors),
            }
        )
    return {"new_commits": listed, "new_commits_complete": False}


def compare_files(baseline: Baseline, hub_files: Sequence[HubFile]) -> dict[str, Any]:
    """Files of the version's selection (its include/exclude patterns) added, removed or
    changed upstream, by digest: the LFS sha256 against the file's sha256, or a small file's
    git blob id against the one recorded at import."""
    selected = {item.path: item for item in matching_files(hub_files, baseline.include,
                                                            baseline.exclude)}  # fmt: skip
    imported = {str(entry["path"]): entry for entry in baseline.files}
    added = [_file(selected[path]) for path in sorted(selected.keys() - imported.keys())]
    removed = [_imported_file(imported[path]) for path in sorted(imported.keys() - selected)]
    changed = []
    for path in sorted(imported.keys() & selected.keys()):
        change = _file_change(imported[path], selected[path])
        if change is not None:
            changed.append(change)
    files = {"added": added, "removed": removed, "changed": changed}
    return {kind: items for kind, items in files.items() if items}


def _digest_of(item: HubFile) -> str:
    return f"sha256:{item.lfs_sha256}" if item.lfs_sha256 else f"git-blob:{item.blob_id}"


def _file(item: HubFile) -> dict[str, Any]:
    return {"path": item.path, "size": item.size, "digest": _digest_of(item)}


def _imported_file(entry: Mapping[str, Any]) -> dict[str, Any]:
    return {"path": str(entry["path"]), "size": int(entry["size"]),
            "digest": f"sha256:{entry['sha256']}"}  # fmt: skip


def _file_change(entry: Mapping[str, Any], item: HubFile) -> dict[str, Any] | None:
    """None when the Hub's digest for the file is the imported one."""
    if item.lfs_sha256 is not None:
        same = item.lfs_sha256 == entry.get("sha256") and item.size == entry.get("size")
        before = f"sha256:{entry.get('sha256')}"
    elif entry.get("hub_digest_kind") == GIT_BLOB:
        same = item.blob_id == entry.get("hub_digest")
        before = f"git-blob:{entry.get('hub_digest')}"
    else:
        # Imported as an LFS file, a plain git file now: no digest of both kinds to compare.
        same, before = False, f"sha256:{entry.get('sha256')}"
    if same:
        return None
    return {
        "path": item.path,
        "size_before": int(entry.get("size") or 0),
        "size_after": item.size,
        "digest_before": before,
        "digest_after": _digest_of(item),
    }


def _same_license(before: str, after: str) -> bool:
    """The same licenses, whatever the spelling (``apache-2.0`` is ``Apache-2.0``)."""
    if before == after:
        return True
    split = [[part.strip() for part in text.split(",") if part.strip()] for text in (before, after)]
    canonical = [[canonical_license(part) or part.lower() for part in parts] for parts in split]
    return sorted(canonical[0]) == sorted(canonical[1])


def _license_attention(model: HubModel, rules: ImportRules) -> list[str]:
    """Why the new license needs attention: the import policy would refuse it."""
    findings: list[PolicyFinding] = []
    try:
        check_licenses(card_licenses(model.card_data or {}, model.license or ""), rules, findings)
    except PolicyViolation as violation:
        return [f"the license changed and the import policy would refuse it: {violation.reason}"]
    return []


def _plain(card_data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The card's YAML as the registry stores it (JSON types; dates as text)."""
    plain: dict[str, Any] = json.loads(json.dumps(card_data or {}, default=str))
    return plain


def _shown(value: Any) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= SHOWN_VALUE_LIMIT else text[: SHOWN_VALUE_LIMIT - 1] + "…"


def _card_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[dict[str, str]]:
    """Card fields (the YAML's keys but the license, shown apart) whose value changed."""
    changes = []
    for key in sorted((before.keys() | after.keys()) - {"license"}):
        old, new = before.get(key), after.get(key)
        if json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True):
            changes.append({"field": str(key), "before": _shown(old), "after": _shown(new)})
    return changes
