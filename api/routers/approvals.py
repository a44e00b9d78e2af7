"""``/approvals``: the versions awaiting approval and the decision on one (registry admins);
``/models/{name}/upstream``: what the upstream watch last found for a model."""

from __future__ import annotations

from django.http import HttpRequest
from ninja import Router

from aegis_catalog.web.permissions import AUDIT_GROUPS, BROWSE_GROUPS, REGISTRY_ADMIN
from api import schemas
from api.auth import require
from api.errors import ONE_ITEM_ERRORS, READ_ERRORS, ApiError
from api.links import absolute
from api.routers.registry import MODEL_NAME, VERSION, model_or_404, version_or_404
from registry import approvals
from registry.models import UpstreamState, VersionApproval

router = Router(tags=["approvals and upstream"])


def approval_out(request: HttpRequest, approval: VersionApproval) -> schemas.ApprovalOut:
    item = approval.version
    name = item.model.name
    return schemas.ApprovalOut(
        model=name,
        version=item.version,
        status=item.status,  # type: ignore[arg-type]
        decision=approval.decision,  # type: ignore[arg-type]
        requested_by=approval.requested_by,
        requested_at=approval.requested_at,
        decided_by=approval.decided_by,
        decided_at=approval.decided_at,
        reason=approval.reason,
        url=absolute(request, "api:version", name, item.version),
        html_url=request.build_absolute_uri(item.get_absolute_url()),
    )


@router.get(
    "/approvals",
    response={200: schemas.ApprovalList, **READ_ERRORS},
    url_name="approvals",
    operation_id="list_approvals",
)
def list_approvals(request: HttpRequest) -> schemas.ApprovalList:
    """The versions awaiting approval (oldest first) and the latest decisions, as the
    approvals page shows them (auditors and registry admins)."""
    require(request, AUDIT_GROUPS, "see the approval queue")
    related = VersionApproval.objects.select_related("version__model")
    pending = related.filter(decision=VersionApproval.Decision.PENDING).order_by("requested_at")
    decided = related.exclude(decision=VersionApproval.Decision.PENDING).order_by(
        "-decided_at", "-pk"
    )[:20]
    return schemas.ApprovalList(
        pending=[approval_out(request, item) for item in pending],
        decided=[approval_out(request, item) for item in decided],
    )


@router.post(
    "/models/{name}/versions/{version}/approval",
    response={
        200: schemas.ApprovalOut,
        **ONE_ITEM_ERRORS,
        400: schemas.ErrorOut,
        409: schemas.ErrorOut,
    },
    url_name="approval",
    operation_id="decide_approval",
)
def decide_approval(
    request: HttpRequest,
    payload: schemas.DecisionIn,
    name: str = MODEL_NAME,
    version: str = VERSION,
) -> schemas.ApprovalOut:
    """Approve (the version becomes active) or reject (its stored files are removed) a version
    awaiting approval, with a reason. Registry admins only, never the import's requester: 409
    says why a decision cannot be made."""
    require(request, (REGISTRY_ADMIN,), "approve or reject imports")
    item = version_or_404(name, version)
    decide = approvals.approve if payload.decision == "approve" else approvals.reject
    try:
        decide(item, user=request.auth, reason=payload.reason)  # type: ignore[attr-defined]
    except approvals.ApprovalError as refusal:
        raise ApiError(409, f"{refusal}.") from refusal
    approval = VersionApproval.objects.select_related("version__model").get(version=item)
    return approval_out(request, approval)


@router.get(
    "/models/{name}/upstream",
    response={200: schemas.UpstreamOut, **ONE_ITEM_ERRORS},
    url_name="upstream",
    operation_id="get_upstream",
)
def get_upstream(request: HttpRequest, name: str = MODEL_NAME) -> schemas.UpstreamOut:
    """What the upstream watch last found in the model's Hub repo, compared with its newest
    version: the state, whether it needs attention, the diff, and the last attempt's error."""
    require(request, BROWSE_GROUPS, "browse the registry")
    model = model_or_404(name)
    state = UpstreamState.objects.select_related("baseline").filter(model=model).first()
    if state is None:
        return schemas.UpstreamOut(
            model=name, state="not_checked", needs_attention=False, baseline_version=None,
            tracked_revision="", upstream_commit="", diff={}, checked_at=None,
            changed_at=None, attempted_at=None, error="",
        )  # fmt: skip
    return schemas.UpstreamOut(
        model=name,
        state=state.state,  # type: ignore[arg-type]
        needs_attention=state.needs_attention,
        baseline_version=state.baseline.version if state.baseline else None,
        tracked_revision=state.tracked_revision,
        upstream_commit=state.upstream_commit,
        diff=state.diff if isinstance(state.diff, dict) else {},
        checked_at=state.checked_at,
        changed_at=state.changed_at,
        attempted_at=state.attempted_at,
        error=state.error,
    )
