"""Helpers the Vault tests share: clients, independent signature checks, a fake GitHub."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from aegis_catalog.lib.vault import TransitClient, VaultConfig

if TYPE_CHECKING:
    from devservers.openbao import OpenBaoServer

DEFAULT_KEY_NAME = "aegis-model-sign"

MESSAGE = b"DSSEv1 28 application/vnd.in-toto+json 2 {}"
DIGEST = hashlib.sha256(MESSAGE).digest()


def root_client(server: OpenBaoServer, **overrides: Any) -> TransitClient:
    return TransitClient(VaultConfig(addr=server.addr, token=server.root_token, **overrides))


def verify_ecdsa(pem: str, der: bytes, digest: bytes = DIGEST) -> bool:
    public_key = serialization.load_pem_public_key(pem.encode())
    assert isinstance(public_key, ec.EllipticCurvePublicKey)
    try:
        public_key.verify(der, digest, ec.ECDSA(Prehashed(hashes.SHA256())))
    except InvalidSignature:
        return False
    return True


def openssl_verifies(tmp_path: Path, pem: str, der: bytes, message: bytes) -> bool:
    (tmp_path / "key.pem").write_text(pem)
    (tmp_path / "sig.der").write_bytes(der)
    (tmp_path / "message").write_bytes(message)
    result = subprocess.run(
        [
            "openssl",
            "dgst",
            "-sha256",
            "-verify",
            str(tmp_path / "key.pem"),
            "-signature",
            str(tmp_path / "sig.der"),
            str(tmp_path / "message"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and "Verified OK" in result.stdout


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FakeGitHubTokenService:
    """Answers like GitHub's ACTIONS_ID_TOKEN_REQUEST_URL and remembers the requests."""

    def __init__(self, reply: dict[str, Any], status: int = 200) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                service.requests.append((self.path, dict(self.headers)))
                body = json.dumps(reply).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
