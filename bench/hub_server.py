"""Serve synthetic repos from directories through the Hub double, in a process of its own
(so the Hub's serving neither shares the GIL nor the memory figures of what is measured).

Usage: python bench/hub_server.py ORG/NAME=DIR [ORG/NAME=DIR ...]
Prints one JSON line {"url": ..., "commits": {repo: sha}} when ready; stops when stdin closes.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from devservers.hub_double import HubDouble


def main() -> None:
    double = HubDouble()
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
    print(json.dumps({"url": double.url, "commits": commits}), flush=True)
    try:
        sys.stdin.read()
    finally:
        double.stop()


if __name__ == "__main__":
    main()
