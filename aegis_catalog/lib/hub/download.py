"""Pinned downloads of a repo's files from the Hub, several at once, with summed progress.

`HubClient.download` checks its arguments and the file list, then hands the transfer to
`SnapshotDownload`: files already complete in the directory are kept, the others are fetched by
`hf_hub_download` on a small thread pool, and progress is reported from the caller's thread.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import constants as hf_constants
from huggingface_hub import hf_hub_download

from aegis_catalog.lib.hub.errors import LIBRARY_NAME, LOCAL_DIR_METADATA, HubError, HubUnavailable

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes total) over all the files of one download."""

DEFAULT_DOWNLOAD_WORKERS = 4
# huggingface_hub reads each download in chunks of constants.DOWNLOAD_CHUNK_SIZE (10 MiB), held
# in memory per concurrent file: 1 MiB keeps a worker's memory flat however many shards a model
# has, at no measurable cost in speed.
_DOWNLOAD_CHUNK_SIZE = 1024 * 1024


def limit_read_size() -> None:
    """Make huggingface_hub read response bodies in pieces of at most 1 MiB."""
    hf_constants.DOWNLOAD_CHUNK_SIZE = min(hf_constants.DOWNLOAD_CHUNK_SIZE, _DOWNLOAD_CHUNK_SIZE)


@dataclass(frozen=True)
class SnapshotDownload:
    """Some files of `repo_id` at the pinned `commit`, fetched into `dest_dir`.

    `sizes` maps each wanted path to the size the Hub lists for it; `translate` turns a
    huggingface_hub failure into a HubError (the client's own translation).
    """

    endpoint: str
    token: str | bool
    timeout: float
    workers: int
    translate: Callable[..., HubError]
    repo_id: str
    commit: str
    dest_dir: Path
    sizes: dict[str, int]

    def run(self, progress: ProgressCallback | None) -> dict[str, Path]:
        """Fetch what is missing, check every file arrived whole, and map path -> local file."""
        self.dest_dir.mkdir(parents=True, exist_ok=True)
        limit_read_size()
        tracker = _ProgressTracker(self.sizes, progress)
        targets = {path: self.dest_dir.joinpath(*path.split("/")) for path in self.sizes}
        to_fetch = []
        for path, target in targets.items():
            if self._is_complete(path, target):
                tracker.finish(path)
            else:
                to_fetch.append(path)
        tracker.report()
        if to_fetch:
            self._fetch_all(to_fetch, targets, tracker)
        for path, target in targets.items():
            if not self._is_complete(path, target):
                raise HubUnavailable(
                    f"{path!r} of {self.repo_id} at commit {self.commit} did not arrive complete"
                    f" from {self.endpoint}; retry the download."
                )
        self._remove_bookkeeping()
        return targets

    def _is_complete(self, path: str, target: Path) -> bool:
        return target.is_file() and target.stat().st_size == self.sizes[path]

    def _fetch_all(
        self, paths: list[str], targets: dict[str, Path], tracker: _ProgressTracker
    ) -> None:
        workers = min(self.workers, len(paths))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hub-download") as pool:
            pending: set[Future[None]] = {
                pool.submit(self._fetch, path, targets[path], tracker) for path in paths
            }
            # Progress is reported from the caller's thread only, so callbacks may use
            # thread-bound resources (a database connection, a terminal).
            while pending:
                finished, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
                tracker.report()
                for future in finished:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        future.result()

    def _fetch(self, path: str, target: Path, tracker: _ProgressTracker) -> None:
        stale = target.exists()
        try:
            hf_hub_download(
                self.repo_id,
                path,
                revision=self.commit,
                local_dir=self.dest_dir,
                endpoint=self.endpoint,
                token=self.token,
                etag_timeout=self.timeout,
                library_name=LIBRARY_NAME,
                force_download=stale,
                tqdm_class=tracker.bar_class(path),
            )
        except Exception as error:
            raise self.translate(
                error,
                what=f"{path!r} of {self.repo_id} at commit {self.commit} on {self.endpoint}",
                repo_id=self.repo_id,
                revision=self.commit,
            ) from error
        tracker.finish(path)

    def _remove_bookkeeping(self) -> None:
        """Remove huggingface_hub's `.cache/huggingface` (and `.cache` if that leaves it empty)."""
        shutil.rmtree(self.dest_dir.joinpath(*LOCAL_DIR_METADATA), ignore_errors=True)
        metadata_root = self.dest_dir / LOCAL_DIR_METADATA[0]
        if metadata_root.is_dir() and not any(metadata_root.iterdir()):
            metadata_root.rmdir()


class _ProgressTracker:
    """Sums per-file byte counts across download threads; `report()` (called from the
    caller's thread) passes (done, total) to the callback when it changed."""

    def __init__(self, sizes: dict[str, int], callback: ProgressCallback | None) -> None:
        self._sizes = sizes
        self._done = dict.fromkeys(sizes, 0)
        self._total = sum(sizes.values())
        self._callback = callback
        self._lock = threading.Lock()
        self._last: tuple[int, int] | None = None

    def add(self, path: str, amount: int) -> None:
        with self._lock:
            self._done[path] = min(max(self._done[path] + amount, 0), self._sizes[path])

    def finish(self, path: str) -> None:
        with self._lock:
            self._done[path] = self._sizes[path]

    def report(self) -> None:
        if self._callback is None:
            return
        with self._lock:
            current = (sum(self._done.values()), self._total)
            if current == self._last:
                return
            self._last = current
            self._callback(*current)

    def bar_class(self, path: str) -> type:
        tracker = self

        class _Bar:
            """Stands in for tqdm: huggingface_hub calls update(n) as chunks arrive."""

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                initial = kwargs.get("initial") or 0
                if initial:
                    tracker.add(path, int(initial))

            def update(self, n: float | None = 1) -> None:
                tracker.add(path, int(n or 0))

            def close(self) -> None:
                pass

            def set_postfix_str(self, *args: Any, **kwargs: Any) -> None:
                pass

            def __enter__(self) -> _Bar:
                return self

            def __exit__(self, *exc_info: object) -> None:
                pass

        return _Bar
