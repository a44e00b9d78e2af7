"""Which handler answers a request: the API (search, model info, tree), `/resolve/` file
downloads, and the CDN listener; injected faults and `fail_api_with` come first."""

from __future__ import annotations

from urllib.parse import quote, unquote, urlsplit

from devservers.hub_double.messages import NOT_FOUND_PAGE, HubError, HubRequest, Response
from devservers.hub_double.model_api import model_api, paths_info
from devservers.hub_double.resolve import cdn_file, resolve_file
from devservers.hub_double.search import search

READ_METHODS = {"GET", "HEAD"}


def route(request: HubRequest) -> Response:
    """The answer to `request`; raises `HubError` for the Hub's error answers."""
    segments = request.path.split("/")[1:]
    fault = request.double._take_fault(request.method, request.target)
    if fault is not None:
        raise fault.error()
    if request.listener == "cdn" or segments[:1] == ["cdn"]:
        if segments[:1] == ["cdn"] and request.method in READ_METHODS:
            return cdn_file(request, segments[1:])
        raise HubError(404, None, "Not Found")
    moved = _moved(request, segments)
    if moved is not None:
        return moved
    if segments[:1] == ["api"]:
        return _api(request, segments)
    if len(segments) >= 5 and segments[2] == "resolve" and request.method in READ_METHODS:
        repo_id = f"{unquote(segments[0])}/{unquote(segments[1])}"
        revision = unquote(segments[3])
        path = unquote("/".join(segments[4:]))
        return resolve_file(request, repo_id, revision, path)
    raise HubError(404, None, NOT_FOUND_PAGE)


def _api(request: HubRequest, segments: list[str]) -> Response:
    if request.double.fail_api_with is not None:
        raise HubError(request.double.fail_api_with, None, "The Hub double is failing on purpose")
    if (
        request.method == "POST"
        and segments[:2] == ["api", "models"]
        and len(segments) >= 6
        and segments[4] == "paths-info"
    ):
        return paths_info(request, segments[2:])
    if request.method not in READ_METHODS:
        raise HubError(405, None, "Method not allowed")
    if segments == ["api", "models"]:
        return search(request)
    if segments[:2] == ["api", "models"] and len(segments) >= 4:
        return model_api(request, segments[2:])
    raise HubError(404, None, NOT_FOUND_PAGE)


def _moved(request: HubRequest, segments: list[str]) -> Response | None:
    """A request for a renamed repo's old id: 307 to the same path and query under the new id,
    with a relative `Location` (as the Hub answers; the client follows it on the same host)."""
    if segments[:2] == ["api", "models"] and len(segments) >= 4:
        index = 2
    elif len(segments) >= 5 and segments[2] == "resolve":
        index = 0
    else:
        return None
    target = request.double._moved_to(f"{unquote(segments[index])}/{unquote(segments[index + 1])}")
    if target is None:
        return None
    renamed = [quote(part, safe="") for part in target.split("/")]
    path = "/" + "/".join([*segments[:index], *renamed, *segments[index + 2 :]])
    query = urlsplit(request.target).query
    location = f"{path}?{query}" if query else path
    return Response(
        307,
        f"Temporary Redirect. Redirecting to {location}".encode(),
        {"Location": location, "Content-Type": "text/plain; charset=utf-8"},
    )
