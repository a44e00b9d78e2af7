"""The HTTP side of the double: a request handler that routes, answers and logs each request,
and the threaded listeners (the Hub itself and its "CDN") it runs in."""

from __future__ import annotations

import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from devservers.hub_double.messages import (
    HubError,
    HubRequest,
    LoggedRequest,
    Response,
    error_response,
)
from devservers.hub_double.routes import route

if TYPE_CHECKING:
    from devservers.hub_double.double import HubDouble


class HubRequestHandler(BaseHTTPRequestHandler):
    """Answers one connection's requests for `double` on `listener` ("hub" or "cdn"); `listen`
    makes a subclass with both set."""

    protocol_version = "HTTP/1.1"
    server_version = "HubDouble/1.0"
    double: HubDouble
    listener: str
    timeout = 60

    # Quiet: tests read the request log instead.
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def _body(self) -> bytes:
        """The request body (a POST's form), at most 1 MiB."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        return self.rfile.read(min(max(length, 0), 1024 * 1024)) if length else b""

    def send_response(self, code: int, message: str | None = None) -> None:
        self._status = code
        super().send_response(code, message)

    def _handle(self, method: str) -> None:
        self._status = 0
        self._served: tuple[str, str] | None = None
        split = urlsplit(self.path)
        request = HubRequest(
            double=self.double,
            listener=self.listener,
            method=method,
            target=self.path,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=self.headers,
            body=self._body(),
        )
        head = method == "HEAD"
        self._method, self._logged = method, False
        try:
            self._send(route(request), head=head)
        except HubError as error:
            self._send(error_response(error), head=head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            self._log_request()

    def _log_request(self) -> None:
        """Log the request once: before the answer's headers go out (a client that has its
        answer finds the request in the log, whichever thread served it), or at the end."""
        if self._logged:
            return
        self._logged = True
        self.double._log(
            LoggedRequest(
                method=self._method,
                path=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                status=self._status,
                listener=self.listener,
                served_file=self._served,
            )
        )

    def _send(self, response: Response, *, head: bool) -> None:
        """Send `response` (headers only for HEAD); a file body at the throttle rate if set."""
        if not head:
            self._served = response.served_file
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.send_header("X-Request-Id", f"Root={secrets.token_hex(8)}")
        self._log_request()
        self.end_headers()
        if head or not response.body:
            return
        rate = self.double.throttle_bytes_per_second if response.throttle else None
        if not rate:
            self.wfile.write(response.body)
            return
        chunk = max(1, min(64 * 1024, rate // 20))
        for start in range(0, len(response.body), chunk):
            piece = response.body[start : start + chunk]
            self.wfile.write(piece)
            self.wfile.flush()
            time.sleep(len(piece) / rate)


def listen(double: HubDouble, host: str, port: int, listener: str) -> ThreadingHTTPServer:
    """Serve `double` as `listener` on host:port (0: any free port) from a daemon thread."""

    class Handler(HubRequestHandler):
        pass

    Handler.double = double
    Handler.listener = listener
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.05},
        name=f"hub-double-{listener}",
        daemon=True,
    )
    thread.start()
    return server
