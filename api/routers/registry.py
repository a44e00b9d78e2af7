"""``/models``, ``/versions``: the registry as JSON, searched and filtered as on its pages, and a
version's files as the provenance page offers them."""

from __future__ import annotations

from typing import Any, cast

from django.db.models import Count, Max, OuterRef, Subquery
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from ninja import Path, Query, Router

from aegis_catalog.lib.storage import InvalidStorageKey, ObjectNotFound, StorageError
from aegis_catalog.web.forms import form_errors_text
from aegis_catalog.web.permissions import AUDIT_GROUPS, BROWSE_GROUPS, user_in_group
from api import schemas
from api.auth import require
from api.errors import ONE_ITEM_ERRORS, READ_ERRORS, ApiError
from api.forms import ApiModelFilterForm
from api.links import absolute, page_of
from api.routers.keys import key_out
from registry.downloads import (
    STATUS_HEADER,
    RecordMismatch,
    VersionNotApproved,
    VersionYanked,
    download_response,
)
from registry.models import NAME_PATTERN, VERSION_PATTERN, ModelVersion, RegisteredModel

router = Router(tags=["registry"])

# Path parameters, with the README's example model for schemathesis's example phase.
MODEL_NAME = Path(..., pattern=NAME_PATTERN, description="registry name", examples=["tiny-bert"])
VERSION = Path(..., pattern=VERSION_PATTERN, examples=["1.0"])
FILE_KIND = Path(..., examples=["public-key"])
IMPORT_ID = Path(..., ge=1, le=schemas.MAX_ID, examples=[1])


def json_list(value: Any) -> list[Any]:
    """A JSON field that should hold a list, as one (anything else reads as empty)."""
    return value if isinstance(value, list) else []


def card_fields(model: RegisteredModel) -> dict[str, Any]:
    """The card metadata a model and each of its versions answer with (license aside: a
    version has its own, at its commit)."""
    return {
        "author": model.author,
        "pipeline_tag": model.pipeline_tag,
        "library_name": model.library_name,
        "base_model": model.base_model,
        "tags": json_list(model.tags),
        "datasets": json_list(model.datasets),
        "languages": json_list(model.languages),
        "gated": model.gated,
    }


def version_status(item: ModelVersion) -> schemas.VersionStatus:
    return cast(schemas.VersionStatus, item.status)


def version_summary(request: HttpRequest, item: ModelVersion) -> schemas.VersionSummary:
    name = item.model.name
    return schemas.VersionSummary(
        model=name,
        version=item.version,
        status=version_status(item),
        sha256=item.sha256,
        size=item.size,
        source_repo=item.source_repo,
        source_commit=item.source_commit,
        imported_at=item.imported_at,
        url=absolute(request, "api:version", name, item.version),
    )


def model_or_404(name: str) -> RegisteredModel:
    model = RegisteredModel.objects.filter(name=name).first()
    if model is None:
        raise ApiError(404, f"There is no registered model {name!r}.", "name")
    return model


def version_or_404(name: str, version: str) -> ModelVersion:
    item = (
        ModelVersion.objects.select_related("model", "signing_key")
        .filter(model__name=name, version=version)
        .first()
    )
    if item is None:
        raise ApiError(404, f"{name!r} has no version {version!r}.", "version")
    return item


@router.get(
    "/models",
    response={200: schemas.ModelPage, **READ_ERRORS},
    url_name="models",
    operation_id="list_models",
)
def list_models(request: HttpRequest, filters: Query[schemas.ModelQuery]) -> schemas.ModelPage:
    """Registered models, searched and filtered as on the registry page, by page number."""
    require(request, BROWSE_GROUPS, "browse the registry")
    query = filters.dict()
    form = ApiModelFilterForm({name: query[name] for name in ApiModelFilterForm.FILTERS})
    if not form.is_valid():
        field = next(iter(form.errors), None)
        raise ApiError(422, form_errors_text(form), field)
    latest = ModelVersion.objects.filter(model=OuterRef("pk")).order_by("-imported_at", "-pk")
    queryset = form.filter(
        RegisteredModel.objects.annotate(
            version_count=Count("versions"),
            last_imported_at=Max("versions__imported_at"),
            latest_version=Subquery(latest.values("version")[:1]),
        ).order_by("name")
    )
    models, info = page_of(request, queryset, filters.page, filters.per_page, query)
    return schemas.ModelPage(
        **info,
        items=[
            schemas.ModelSummary(
                name=model.name,
                source_repo=model.source_repo,
                author=model.author,
                license=model.license,
                pipeline_tag=model.pipeline_tag,
                library_name=model.library_name,
                tags=model.tags if isinstance(model.tags, list) else [],
                version_count=model.version_count,
                latest_version=model.latest_version,
                last_imported_at=model.last_imported_at,
                url=absolute(request, "api:model", model.name),
                html_url=request.build_absolute_uri(model.get_absolute_url()),
            )
            for model in models
        ],
    )


@router.get(
    "/models/{name}",
    response={200: schemas.ModelDetail, **ONE_ITEM_ERRORS},
    url_name="model",
    operation_id="get_model",
)
def get_model(
    request: HttpRequest, paging: Query[schemas.PageQuery], name: str = MODEL_NAME
) -> schemas.ModelDetail:
    """One registered model, its card metadata, and its versions (newest first, by page)."""
    require(request, BROWSE_GROUPS, "browse the registry")
    model = model_or_404(name)
    versions = model.versions.order_by("-imported_at", "-pk")
    rows, info = page_of(request, versions, paging.page, paging.per_page, {})
    for row in rows:
        row.model = model  # one model: no query per row
    return schemas.ModelDetail(
        name=model.name,
        source_repo=model.source_repo,
        license=model.license,
        **card_fields(model),
        card_data=model.card_data if isinstance(model.card_data, dict) else {},
        created_at=model.created_at,
        updated_at=model.updated_at,
        url=absolute(request, "api:model", model.name),
        html_url=request.build_absolute_uri(model.get_absolute_url()),
        versions=schemas.VersionPage(**info, items=[version_summary(request, row) for row in rows]),
    )


@router.get(
    "/versions",
    response={200: schemas.VersionCursorPage, **READ_ERRORS},
    url_name="versions",
    operation_id="list_versions",
)
def list_versions(
    request: HttpRequest, filters: Query[schemas.VersionListQuery]
) -> schemas.VersionCursorPage:
    """Every registry version, oldest first, by cursor: one query per page, however deep."""
    require(request, BROWSE_GROUPS, "browse the registry")
    queryset = ModelVersion.objects.select_related("model").only(
        "id", "version", "status", "sha256", "size", "source_repo", "source_commit",
        "imported_at", "model__name",
    ).order_by("pk")  # fmt: skip
    if filters.model:
        queryset = queryset.filter(model__name=filters.model)
    if filters.status:
        queryset = queryset.filter(status=filters.status)
    if filters.sha256:
        queryset = queryset.filter(sha256=filters.sha256)
    if filters.cursor is not None:
        queryset = queryset.filter(pk__gt=filters.cursor)
    rows = list(queryset[: filters.limit + 1])
    more = len(rows) > filters.limit
    rows = rows[: filters.limit]
    next_cursor = rows[-1].pk if more else None
    next_url = None
    if next_cursor is not None:
        query = {
            key: value
            for key, value in filters.dict().items()
            if value not in ("", None) and key != "cursor"
        }
        next_url = absolute(request, "api:versions", query={**query, "cursor": next_cursor})
    return schemas.VersionCursorPage(
        items=[version_summary(request, row) for row in rows],
        limit=filters.limit,
        next_cursor=next_cursor,
        next=next_url,
    )


@router.get(
    "/models/{name}/versions/{version}",
    response={200: schemas.VersionDetail, **ONE_ITEM_ERRORS},
    url_name="version",
    operation_id="get_version",
)
def get_version(
    request: HttpRequest, name: str = MODEL_NAME, version: str = VERSION
) -> schemas.VersionDetail:
    """One version: where the artifact is, its digest, status, signing key, source, metadata,
    and links to download the artifact, attestation, model.sig, aegis.json and public key."""
    require(request, BROWSE_GROUPS, "browse the registry")
    item = version_or_404(name, version)
    model = item.model

    def download(kind: str) -> str:
        return absolute(request, "api:download", name, version, kind)

    return schemas.VersionDetail(
        model=model.name,
        version=item.version,
        status=version_status(item),
        status_reason=item.status_reason,
        model_path=item.model_path,
        sha256=item.sha256,
        size=item.size,
        file_count=item.file_count,
        signing_key=key_out(item.signing_key),
        source=schemas.SourceOut(
            repo=item.source_repo,
            revision=item.source_revision,
            commit=item.source_commit,
            endpoint=item.source_endpoint,
        ),
        imported_by=item.imported_by,
        imported_at=item.imported_at,
        import_options=item.import_options if isinstance(item.import_options, dict) else {},
        metadata=schemas.MetadataOut(license=item.license or model.license, **card_fields(model)),
        files=json_list(item.manifest),
        scan_results=json_list(item.scan_results),
        links=schemas.VersionLinks(
            self=absolute(request, "api:version", name, version),
            html=request.build_absolute_uri(item.get_absolute_url()),
            model=absolute(request, "api:model", name),
            artifact=download("artifact"),
            attestation=download("attestation"),
            model_sig=download("model-sig"),
            record=download("record"),
            public_key=download("public-key"),
        ),
    )


FILE_RESPONSE = {
    "responses": {
        "200": {
            "description": "the file, as an attachment",
            "content": {
                "application/gzip": {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
                "application/x-pem-file": {"schema": {"type": "string"}},
            },
        }
    }
}


@router.get(
    "/models/{name}/versions/{version}/files/{kind}",
    response={**ONE_ITEM_ERRORS, 410: schemas.ErrorOut, 503: schemas.ErrorOut},
    url_name="download",
    operation_id="download_version_file",
    openapi_extra=FILE_RESPONSE,
)
def download_file(
    request: HttpRequest,
    name: str = MODEL_NAME,
    version: str = VERSION,
    kind: schemas.DownloadKind = FILE_KIND,
    allow_yanked: bool = Query(
        False, description="auditors and registry admins: the artifact of a yanked version too"
    ),
) -> HttpResponseBase:
    """The artifact (tar.gz), its attestation bundle, model.sig, aegis.json or the public key.

    The artifact's answer carries ``Repr-Digest: sha-256=:…:`` with the registered digest; every
    answer carries ``X-Aegis-Version-Status``. A yanked version's artifact answers 410 with the
    reason unless an auditor or registry admin sets ``allow_yanked``."""
    require(request, BROWSE_GROUPS, "download registry files")
    item = version_or_404(name, version)
    status = {STATUS_HEADER: item.status}
    allowed = allow_yanked and user_in_group(request.auth, *AUDIT_GROUPS)  # type: ignore[attr-defined]
    try:
        return download_response(item, kind, allow_yanked=allowed)
    except VersionYanked as refusal:
        raise ApiError(410, str(refusal), headers=status) from refusal
    except VersionNotApproved as refusal:
        raise ApiError(refusal.status, f"{refusal}.", headers=status) from refusal
    except RecordMismatch as mismatch:
        raise ApiError(409, f"{mismatch}.", headers=status) from mismatch
    except InvalidStorageKey as error:
        raise ApiError(403, f"Not served: {error}.", headers=status) from error
    except ObjectNotFound as error:
        raise ApiError(404, f"Not in storage: {error}.", headers=status) from error
    except StorageError as error:
        raise ApiError(503, f"Storage is not available: {error}.", headers=status) from error
