"""``/hf/``: the read-only part of the Hub's HTTP API that ``huggingface_hub`` uses to pull a
model (``model_info``, ``list_repo_tree``, ``get_paths_info``, ``HEAD``/``GET`` of
``resolve``), answered from the registry: only versions that passed verification and are not
yanked, from their verified copies in the store, never from the Hub.

``HF_TOKEN`` is an Aegis API token; without one a pull is refused unless
``AEGIS_HF_ALLOW_ANONYMOUS``. Errors carry the Hub's ``X-Error-Code`` so the client raises
the matching error with the message.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from aegis_catalog.web.permissions import BROWSE_GROUPS, user_in_group
from api.actions import TokenNotAccepted, authenticate_token
from registry.downloads import STATUS_HEADER
from registry.models import ModelVersion
from registry.provenance import model_signature_bytes, public_key_bytes
from serving import payloads
from serving.checks import refuse_changed_copy, servable
from serving.files import open_copy, requested_range, stream_file
from serving.models import ServedVersion
from serving.names import NotServed, Repo, find_repo, find_version, repo_commit, served_sha
from serving.pulls import count_pull

ANONYMOUS_REFUSED = (
    "Aegis serves models to its users only: set HF_TOKEN to an Aegis API token "
    "(Account > API tokens)."
)


def _error(failure: NotServed) -> JsonResponse:
    message = str(failure)
    response = JsonResponse({"error": message}, status=failure.status)
    response["X-Error-Message"] = message.encode("ascii", "replace").decode().replace("\n", " ")
    if failure.code:
        response["X-Error-Code"] = failure.code
    return response


def caller(request: HttpRequest) -> Any:
    """The token's user (who must be in a group of the site), or None for an anonymous pull
    where that is allowed; NotServed (401/403) otherwise."""
    header = request.headers.get("Authorization")
    if not header:
        if settings.AEGIS_HF_ALLOW_ANONYMOUS:
            return None
        raise NotServed(ANONYMOUS_REFUSED, status=401)
    scheme, _, secret = header.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise NotServed("Send the Aegis API token as HF_TOKEN (Authorization: Bearer).", status=401)
    try:
        user = authenticate_token(secret.strip()).user
    except TokenNotAccepted as refused:
        raise NotServed(f"{refused} Set HF_TOKEN to a valid Aegis API token.", status=401) from None
    if not user_in_group(user, *BROWSE_GROUPS):
        raise NotServed(
            f"{user.get_username()} is in no group of Aegis Catalog, so may not pull models.",
            status=403,
        )
    return user


View = Callable[..., HttpResponseBase]
_R = TypeVar("_R", bound=HttpResponseBase)


def hub_view(*methods: str) -> Callable[[View], View]:
    """Token check first, NotServed as the Hub's error answer, no CSRF (tokens, no cookies)."""

    def decorate(view: View) -> View:
        @csrf_exempt
        @require_http_methods(list(methods))
        @wraps(view)
        def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
            try:
                request.user = caller(request)
                return view(request, *args, **kwargs)
            except NotServed as failure:
                return _error(failure)

        return wrapped

    return decorate


def _served(
    request: HttpRequest, org: str, name: str, revision: str
) -> tuple[Repo, ModelVersion, ServedVersion]:
    repo = find_repo(f"{org}/{name}")
    version = find_version(repo, revision)
    return repo, version, servable(version, actor=_actor(request), user=request.user)


def _status_headers(response: _R, version: ModelVersion) -> _R:
    response[STATUS_HEADER] = version.status
    if version.status == ModelVersion.Status.DEPRECATED:
        reason = version.status_reason.strip() or "no reason given"
        warning = f"{version.model.name} {version.version} is deprecated ({reason})"
        response["X-HF-Warning"] = (
            "aegis-deprecated; " + warning.encode("ascii", "replace").decode()
        )
    return response


@hub_view("GET")
def model_info(request: HttpRequest, org: str, name: str, revision: str = "main") -> HttpResponse:
    repo, version, served = _served(request, org, name, revision)
    return _status_headers(JsonResponse(payloads.model_info(repo, version, served)), version)


@hub_view("GET")
def tree(
    request: HttpRequest, org: str, name: str, revision: str, prefix: str = ""
) -> HttpResponse:
    _repo, version, served = _served(request, org, name, revision)
    recursive = request.GET.get("recursive", "").lower() in ("1", "true")
    entries = payloads.tree(served, prefix, recursive=recursive)
    if prefix.strip("/") and not entries:
        raise NotServed(f"{prefix} does not exist at {revision}.", code="EntryNotFound")
    return _status_headers(JsonResponse(entries, safe=False), version)


@hub_view("POST")
def paths_info(request: HttpRequest, org: str, name: str, revision: str) -> HttpResponse:
    _repo, version, served = _served(request, org, name, revision)
    entries = payloads.paths_info(served, request.POST.getlist("paths"))
    return _status_headers(JsonResponse(entries, safe=False), version)


@hub_view("GET", "HEAD")
def resolve(
    request: HttpRequest, org: str, name: str, revision: str, path: str
) -> HttpResponseBase:
    """A file: ``X-Repo-Commit`` (the version's served sha), its sha256 as ``ETag`` and
    ``X-Linked-Etag``, its size; its bytes on GET, or the ``Range`` asked for (206)."""
    _repo, version, served = _served(request, org, name, revision)
    entry = served.file(path)
    if entry is None:
        raise NotServed(
            f"{path} is not a file of {org}/{name} at {revision}.", code="EntryNotFound"
        )
    size, sha256 = int(entry["size"]), str(entry["sha256"])
    span = requested_range(request.headers.get("Range"), size)
    response: HttpResponseBase
    if request.method == "HEAD":
        response = HttpResponse(content_type="application/octet-stream")
        length = size
    else:

        def refuse(reason: str) -> None:
            refuse_changed_copy(version, path, reason, actor=_actor(request))

        stream = open_copy(entry["url"], size=size, span=span, on_missing=refuse)
        response = StreamingHttpResponse(
            stream_file(
                stream, url=entry["url"], sha256=sha256, size=size, span=span, on_changed=refuse
            ),
            content_type="application/octet-stream",
        )
        length = (span[1] - span[0]) if span else size
        count_pull(version, request.user, size=length)
    if span is not None and request.method == "GET":
        response.status_code = 206
        response["Content-Range"] = f"bytes {span[0]}-{span[1] - 1}/{size}"
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["X-Repo-Commit"] = repo_commit(version, revision)
    response["ETag"] = f'"{sha256}"'
    response["X-Linked-Etag"] = f'"{sha256}"'
    response["X-Linked-Size"] = str(size)
    return _status_headers(response, version)


def _actor(request: HttpRequest) -> str:
    return request.user.get_username() if request.user is not None else "anonymous"


@hub_view("GET")
def model_signature(request: HttpRequest, org: str, name: str, revision: str) -> HttpResponse:
    """The version's ``model.sig``: ``model_signing verify key`` checks a pulled snapshot with
    it and the public key."""
    _repo, version, _served_version = _served(request, org, name, revision)
    response = HttpResponse(model_signature_bytes(version), content_type="application/json")
    response["X-Repo-Commit"] = served_sha(version)
    return _status_headers(response, version)


@hub_view("GET")
def public_key(request: HttpRequest, org: str, name: str, revision: str) -> HttpResponse:
    """The PEM of the key the version was signed with."""
    _repo, version, _served_version = _served(request, org, name, revision)
    response = HttpResponse(public_key_bytes(version), content_type="application/x-pem-file")
    response["X-Repo-Commit"] = served_sha(version)
    response["X-Aegis-Signing-Key"] = str(version.signing_key)
    return _status_headers(response, version)
