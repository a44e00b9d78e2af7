"""Serve synthetic repos from directories through the Hub double, in a process of its own
(so the Hub's serving neither shares the GIL nor the memory figures of what is measured).

Usage: python bench/hub_server.py ORG/NAME=DIR [ORG/NAME=DIR ...]
Prints one JSON line {"url": ..., "cdn_url": ..., "commits": {repo: sha}} when ready. Then
each line read from stdin, {"hub": URL, "cdn": URL}, adds a front (a proxy of the Hub
listener at `hub` and of the CDN listener at `cdn`: the bench's throttle), answered with a
line {"front": URL}. Stops when stdin closes.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from http.server import ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devservers.hub_double import HubDouble
from devservers.hub_double.messages import Response
from devservers.hub_double.server import HubRequestHandler


class FrontedHubDouble(HubDouble):
    """The Hub double, reached directly or through fronts (proxies of its two listeners).

    The double's redirects to its CDN and its paging links are absolute URLs of its own
    listeners; a client that came through a front would leave it there. So an answer to a
    request whose `Host` is a front's points at that front's URLs instead: the CDN stays
    another origin (the client drops its token and reads the file's metadata from the
    redirect, as against huggingface.co), reached through the front's CDN port.
    """

    def __init__(self) -> None:
        super().__init__()
        # A front's Host header -> {the double's own URL + "/": the front's URL + "/"}.
        self.fronts: dict[str, dict[str, str]] = {}

    def add_front(self, hub_url: str, cdn_url: str) -> None:
        self.fronts[urlsplit(hub_url).netloc] = {
            self.url + "/": hub_url.rstrip("/") + "/",
            self.cdn_url + "/": cdn_url.rstrip("/") + "/",
        }

    def _listen(self, port: int, listener: str) -> ThreadingHTTPServer:
        server = super()._listen(port, listener)
        # The double's handler class for this listener, with FrontedHandler's `_send` first
        # (nothing has connected yet: the URLs are printed after both listeners are up).
        handler = server.RequestHandlerClass
        assert isinstance(handler, type)
        server.RequestHandlerClass = type("FrontedHandler", (FrontedHandler, handler), {})
        return server


class FrontedHandler(HubRequestHandler):
    """Sends the double's answer with its URLs rewritten for the front the request came by."""

    double: FrontedHubDouble

    def _send(self, response: Response, *, head: bool) -> None:
        urls = self.double.fronts.get(self.headers.get("Host", ""))
        if urls:
            headers = {}
            for name, value in response.headers.items():
                for own, front in urls.items():
                    value = value.replace(own, front)
                headers[name] = value
            response = replace(response, headers=headers)
        super()._send(response, head=head)


def main() -> None:
    double = FrontedHubDouble()
    commits = {}
    for argument in sys.argv[1:]:
        repo_id, _, directory = argument.partition("=")
        root = Path(directory)
        files = {
            path.relative_to(root).as_posix(): path.read_bytes()
            for path in sorted(root.rglob("*"))
            if path.is_file()
        }
        commits[repo_id] = double.add_repo(repo_id, files, library_name="transformers")
        del files
    double.start()
    ready = {"url": double.url, "cdn_url": double.cdn_url, "commits": commits}
    print(json.dumps(ready), flush=True)
    try:
        for line in sys.stdin:
            front = json.loads(line)
            double.add_front(front["hub"], front["cdn"])
            print(json.dumps({"front": front["hub"]}), flush=True)
    finally:
        double.stop()


if __name__ == "__main__":
    main()
