"""Run in a client process with HF_ENDPOINT and HF_TOKEN set: pull each (repo_id, revision)
given as JSON on argv with the real huggingface_hub, and print path -> sha256 of each snapshot,
the served sha, and whether its safetensors load. No Django here."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from huggingface_hub import HfApi, RepoFile, hf_hub_download, snapshot_download
from safetensors.numpy import load_file


def pulled(repo_id: str, revision: str) -> dict[str, object]:
    folder = Path(snapshot_download(repo_id, revision=revision))
    files = {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }
    loaded = {
        name: sorted(load_file(folder / name)) for name in files if name.endswith(".safetensors")
    }
    info = HfApi().model_info(repo_id, revision=revision, files_metadata=True)
    listed = sorted(HfApi().list_repo_files(repo_id, revision=revision))
    paths = HfApi().get_paths_info(repo_id, ["config.json", "no-such-file"], revision=revision)
    one = Path(hf_hub_download(repo_id, "config.json", revision=revision))
    return {
        "sha": info.sha,
        "files": files,
        "tensors": loaded,
        "listed": listed,
        "paths_info": {
            item.path: item.lfs.sha256
            for item in paths
            if isinstance(item, RepoFile) and item.lfs is not None
        },
        "config_json": hashlib.sha256(one.read_bytes()).hexdigest(),
        "sibling_sha256": {s.rfilename: s.lfs.sha256 for s in info.siblings or [] if s.lfs},
    }


if __name__ == "__main__":
    print(
        json.dumps({f"{repo} @ {rev}": pulled(repo, rev) for repo, rev in json.loads(sys.argv[1])})
    )
