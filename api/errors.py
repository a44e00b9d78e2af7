"""The API's errors: always ``{"error": {"code", "message", "field"?}}``, whatever raised them
(an operation's ApiError, ninja's validation, authentication, a 404)."""

from __future__ import annotations

from typing import Any

from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError

from aegis_catalog.lib.hub import (
    GatedRepo,
    HubError,
    HubUnavailable,
    InvalidRepoId,
    InvalidRevision,
    RepoNotFound,
    RevisionNotFound,
)
from api import schemas

ERROR_STATUSES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    422: "invalid",
    502: "bad_gateway",
    503: "unavailable",
}
READ_ERRORS: dict[int, type[schemas.ErrorOut]] = {
    401: schemas.ErrorOut,
    403: schemas.ErrorOut,
    422: schemas.ErrorOut,
}
ONE_ITEM_ERRORS = {**READ_ERRORS, 404: schemas.ErrorOut}


def error_body(status: int, message: str, field: str | None = None) -> dict[str, Any]:
    detail: dict[str, Any] = {"code": ERROR_STATUSES.get(status, "error"), "message": message}
    if field:
        detail["field"] = field
    return {"error": detail}


def error_response(status: int, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse(error_body(status, message, field), status=status)


class ApiError(Exception):
    """An answer other than success, raised anywhere below an operation."""

    def __init__(
        self,
        status: int,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.field = status, message, field
        self.headers = headers or {}


def _api_error(request: HttpRequest, error: ApiError) -> HttpResponse:
    response = error_response(error.status, error.message, error.field)
    for header, value in error.headers.items():
        response[header] = value
    return response


def _validation_error(request: HttpRequest, error: ValidationError) -> HttpResponse:
    """Ninja's own validation errors (query, path, body): the first one, with its field."""
    first = error.errors[0] if error.errors else {}
    location = [str(part) for part in first.get("loc", ())]
    # ("query", "page") / ("path", "name") / ("body", "payload", "model_name")
    parts = location[2:] if location[:1] == ["body"] and len(location) > 2 else location[1:]
    field = ".".join(parts) or None
    message = str(first.get("msg") or "The request is not valid.")
    return error_response(422, f"{field}: {message}" if field else message, field)


def _authentication_error(request: HttpRequest, error: AuthenticationError) -> HttpResponse:
    response = error_response(401, error.message)
    response["WWW-Authenticate"] = 'Bearer realm="aegis"'
    return response


def _http_error(request: HttpRequest, error: HttpError) -> HttpResponse:
    message = error.message
    if error.status_code == 400 and "parse request body" in message:
        message = "The request body is not valid JSON."
    return error_response(error.status_code, message)


def _not_found(request: HttpRequest, error: Http404) -> HttpResponse:
    return error_response(404, str(error) or "Not found.")


def install_error_handlers(api: NinjaAPI) -> None:
    """Every error of ``api`` answered in the one error shape."""
    api.exception_handler(ApiError)(_api_error)
    api.exception_handler(ValidationError)(_validation_error)
    api.exception_handler(AuthenticationError)(_authentication_error)
    api.exception_handler(HttpError)(_http_error)
    api.exception_handler(Http404)(_not_found)


def hub_error(error: HubError) -> ApiError:
    """A Hub failure with the status the import form's page gives it."""
    field = "revision" if isinstance(error, InvalidRevision | RevisionNotFound) else "repo_id"
    if isinstance(error, InvalidRepoId | InvalidRevision):
        return ApiError(422, str(error), field)
    if isinstance(error, RepoNotFound | RevisionNotFound):
        return ApiError(404, str(error), field)
    if isinstance(error, GatedRepo):
        return ApiError(403, str(error), field)
    if isinstance(error, HubUnavailable):
        return ApiError(503, str(error))
    return ApiError(502, f"The Hub refused the request: {error}")
