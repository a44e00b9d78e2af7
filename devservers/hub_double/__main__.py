"""Serve the Hub double with the demo repos: ``python -m devservers.hub_double --port 8765``."""

from __future__ import annotations

from devservers.hub_double.cli import main

main()
