"""Pull a model from Aegis Catalog's Hugging Face-compatible endpoint and verify it before use.

Needs only ``huggingface_hub`` and ``model-signing`` (no Django, nothing else of Aegis)::

    HF_ENDPOINT=https://aegis.example.com/hf HF_TOKEN=aegis_... \\
        python aegis_pull.py aegis/tiny-bert 1.0

or from Python::

    from aegis_pull import pull_verified
    path = pull_verified("aegis/tiny-bert", "1.0")  # then from_pretrained(path)

``snapshot_download`` fetches the files (into the usual Hugging Face cache, or ``local_dir``);
then the version's ``model.sig`` and the public key it was signed with are fetched from the same
endpoint, and ``model_signing`` checks every file of the snapshot against the signature. The
path is returned only when that passes; ``VerificationFailed`` says what did not.

Trust: the key comes from the same server as the files. To pin it, pass ``public_key=`` (a PEM
file you obtained another way, for instance from the registry page or your security team).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from huggingface_hub import constants, get_session, snapshot_download
from huggingface_hub.utils import build_hf_headers, hf_raise_for_status
from model_signing import hashing, verifying

# A snapshot in local_dir carries huggingface_hub's own bookkeeping, which nobody signed.
LOCAL_DIR_BOOKKEEPING = ".cache"


class VerificationFailed(Exception):
    """The pulled files do not verify against the version's model.sig."""


def _fetch(url: str, token: str | bool | None, destination: Path) -> Path:
    response = get_session().get(url, headers=build_hf_headers(token=token), follow_redirects=True)
    hf_raise_for_status(response)
    destination.write_bytes(response.content)
    return destination


def verify_snapshot(folder: Path, signature: Path, public_key: Path) -> None:
    """``model_signing verify key`` over ``folder`` (its files may be links into the cache)."""
    config = hashing.Config().use_file_serialization(
        hashing_algorithm="sha256", allow_symlinks=True
    )
    config.set_allow_symlinks(True)
    if (folder / LOCAL_DIR_BOOKKEEPING).exists():
        config.set_ignored_paths(paths=[LOCAL_DIR_BOOKKEEPING])
    verifier = verifying.Config().use_elliptic_key_verifier(public_key=public_key)
    try:
        verifier.set_hashing_config(config).verify(folder, signature)
    except ValueError as failure:
        raise VerificationFailed(
            f"{folder} does not verify against its model.sig: {failure}"
        ) from None


def pull_verified(
    repo_id: str,
    revision: str = "main",
    *,
    endpoint: str | None = None,
    token: str | bool | None = None,
    cache_dir: str | Path | None = None,
    local_dir: str | Path | None = None,
    public_key: str | Path | None = None,
) -> Path:
    """Download ``repo_id`` at ``revision`` through Aegis and return its folder once every file
    verifies against the version's model.sig; ``VerificationFailed`` otherwise."""
    endpoint = (endpoint or constants.ENDPOINT).rstrip("/")
    folder = Path(
        snapshot_download(
            repo_id, revision=revision, endpoint=endpoint, token=token,
            cache_dir=cache_dir, local_dir=local_dir,
        )
    )  # fmt: skip
    # The cache keeps a snapshot under the commit it was served as: ask for that one's signature.
    commit = revision if local_dir is not None else folder.name
    base = f"{endpoint}/api/models/{repo_id}/aegis/{commit}"
    with tempfile.TemporaryDirectory(prefix="aegis-pull-") as scratch:
        signature = _fetch(f"{base}/model.sig", token, Path(scratch) / "model.sig")
        key = (
            Path(public_key)
            if public_key
            else _fetch(f"{base}/key.pem", token, Path(scratch) / "key.pem")
        )
        verify_snapshot(folder, signature, key)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("repo_id", help="aegis/<name>, or the Hub repo id the model came from")
    parser.add_argument("revision", nargs="?", default="main", help="a version, commit or main")
    parser.add_argument("--local-dir", help="put the files here instead of the HF cache")
    parser.add_argument("--public-key", help="verify with this PEM instead of the served key")
    args = parser.parse_args(argv)
    token = os.environ.get("HF_TOKEN")
    try:
        path = pull_verified(
            args.repo_id, args.revision, token=token, local_dir=args.local_dir,
            public_key=args.public_key,
        )  # fmt: skip
    except VerificationFailed as failure:
        print(f"refused: {failure}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
