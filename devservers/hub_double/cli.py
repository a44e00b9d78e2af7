"""`python -m devservers.hub_double [--port 8765]`: serve the demo repos until Ctrl-C."""

from __future__ import annotations

import argparse
import time

from devservers.hub_double.demo import demo_repos
from devservers.hub_double.double import HubDouble


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the Hub double with demo repos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--cdn-port", type=int, default=0)
    arguments = parser.parse_args(argv)
    double = HubDouble(host=arguments.host)
    demo_repos(double)
    double.start(arguments.port, arguments.cdn_port)
    print(
        f"Hub double at {double.url} (CDN {double.cdn_url});"
        f" token for gated/private repos: {double.token}"
    )
    print("Repos: " + ", ".join(double.repo_ids()[:8]) + ", ...", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        double.stop()
