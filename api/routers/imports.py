"""``/imports``: start an import as the import form does, and follow it."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from ninja import Path, Router, Status

from aegis_catalog.lib.hub import HubError
from aegis_catalog.web.forms import form_errors_text
from aegis_catalog.web.permissions import BROWSE_GROUPS, IMPORT_GROUPS
from api import schemas
from api.auth import require
from api.errors import ONE_ITEM_ERRORS, ApiError, hub_error
from api.forms import bound_import_form
from api.links import absolute
from api.routers.registry import json_list, version_summary
from imports.actions import ImportQueueUnavailable, ImportRejected, VersionTaken, request_import
from imports.models import ImportRequest

router = Router(tags=["imports"])
IMPORT_ID = Path(..., ge=1, le=schemas.MAX_ID, examples=[1])


def import_out(request: HttpRequest, item: ImportRequest) -> schemas.ImportOut:
    version = item.model_version
    return schemas.ImportOut.model_validate(
        {
            "id": item.pk,
            "status": item.status,
            "is_terminal": item.is_terminal,
            "stage": item.stage,
            "repo_id": item.repo_id,
            "revision": item.revision,
            "commit": item.commit,
            "model_name": item.model_name,
            "version": item.version,
            "include": json_list(item.include_patterns),
            "exclude": json_list(item.exclude_patterns),
            "upload_s3": item.upload_s3,
            "register": item.register,
            "source": item.source,
            "actor": item.actor,
            "requested_by": item.requested_by.get_username() if item.requested_by else None,
            "created_at": item.created_at,
            "started_at": item.started_at,
            "finished_at": item.finished_at,
            "bytes_done": item.bytes_done,
            "bytes_total": item.bytes_total,
            "attempts": item.attempts,
            "cancel_requested": item.cancel_requested,
            "error": item.error,
            "error_code": item.error_code,
            "links": {
                "self": absolute(request, "api:import", item.pk),
                "html": request.build_absolute_uri(item.get_absolute_url()),
                "version": absolute(request, "api:version", version.model.name, version.version)
                if version
                else None,
            },
            "events": [
                {
                    "created_at": event.created_at,
                    "kind": event.kind,
                    "stage": event.stage,
                    "message": event.message,
                    "details": event.details if isinstance(event.details, dict) else {},
                }
                for event in item.events.all()
            ],
        }
    )


def _load_import(pk: int) -> ImportRequest | None:
    return (
        ImportRequest.objects.select_related("model_version__model", "requested_by")
        .filter(pk=pk)
        .first()
    )


@router.post(
    "/imports",
    response={
        202: schemas.ImportOut,
        200: schemas.ExistingVersionOut,
        400: schemas.ErrorOut,
        401: schemas.ErrorOut,
        403: schemas.ErrorOut,
        404: schemas.ErrorOut,
        409: schemas.ErrorOut,
        422: schemas.ErrorOut,
        502: schemas.ErrorOut,
        503: schemas.ErrorOut,
    },
    url_name="imports",
    operation_id="start_import",
    by_alias=True,
)
def create_import(
    request: HttpRequest, payload: schemas.ImportIn, response: HttpResponse
) -> Status[schemas.ImportOut] | Status[schemas.ExistingVersionOut]:
    """Start an import of a Hub repo at a revision, validated, deduplicated and queued as the
    import form does. 202 with the import (poll its ``links.self``); 200 when the same repo,
    commit and file patterns are already registered; 409 when the name and version are taken;
    503 when the queue (Redis) or the Hub is unavailable."""
    require(request, IMPORT_GROUPS, "import models")
    form = bound_import_form(payload)
    if not form.is_valid():
        field = next(iter(form.errors), None)
        raise ApiError(422, form_errors_text(form), None if field == "__all__" else field)
    revision = form.cleaned_data["revision"]
    user = request.auth  # type: ignore[attr-defined]
    try:
        requested = request_import(
            form.import_options(payload.repo_id, revision),
            actor=user.get_username(),
            user=user,
            source=ImportRequest.Source.API,
        )
    except HubError as error:
        raise hub_error(error) from error
    except VersionTaken as error:
        raise ApiError(409, str(error), "version") from error
    except ImportQueueUnavailable as error:
        raise ApiError(503, f"{str(error)[:1].upper()}{str(error)[1:]}.") from error
    except ImportRejected as error:
        raise ApiError(422, str(error), error.field) from error
    if requested.existing is not None:
        existing = requested.existing
        return Status(
            200,
            schemas.ExistingVersionOut(
                message=f"{payload.repo_id} at commit {requested.commit[:12]} with these "
                f"file patterns is already in the registry as {existing.model.name} "
                f"{existing.version}; nothing was imported again.",
                existing_version=version_summary(request, existing),
            ),
        )
    assert requested.request is not None
    created = requested.request
    item = _load_import(created.pk)
    assert item is not None
    response["Location"] = absolute(request, "api:import", item.pk)
    return Status(202, import_out(request, item))


@router.get(
    "/imports/{import_id}",
    response={200: schemas.ImportOut, **ONE_ITEM_ERRORS},
    url_name="import",
    operation_id="get_import",
    by_alias=True,
)
def get_import(request: HttpRequest, import_id: int = IMPORT_ID) -> schemas.ImportOut:
    """One import: its status, stage, progress in bytes, error, and its event timeline."""
    require(request, BROWSE_GROUPS, "see imports")
    item = _load_import(import_id)
    if item is None:
        raise ApiError(404, f"There is no import #{import_id}.", "import_id")
    return import_out(request, item)
