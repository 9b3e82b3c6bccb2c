"""The disk cache of thumbnails under STATE_DIR/thumbnails, keyed by content hash and size.

A thumbnail depends only on the bytes it was made from, so the key is their hash: the same
picture in two datasets or jobs is made once, and a changed file (a new hash) never meets a
stale entry. Files are written to a temporary name and renamed, so a reader sees a whole
thumbnail or none, also across processes. Blocking: call from a worker thread.

The cache is bounded: each process counts what it writes on top of what it found on disk
(counted in the background after its first write), and past the limit one background pass
removes the least recently read files (by access time; where the file system does not keep
it, the oldest written) down to PRUNE_TO of it. The count is approximate (several processes
share the folder): the pass recounts from disk, adds what this process wrote while it ran,
and goes round again while that is still over the limit.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

# Part of the key: a change in how thumbnails are made (quality, resampling) starts afresh.
RENDITION = "v1"
SUFFIX = ".jpg"
PRUNE_TO = 0.8


class ThumbnailCache:
    def __init__(self, root: Path, max_bytes: int):
        self.root = root / RENDITION
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._used = 0  # bytes on disk, as far as this process knows
        self._measured = False
        self._pruning = False
        self._written_in_pass = 0  # bytes written while a pass runs: its listing may miss them

    def path(self, content_hash: str, size: int) -> Path:
        # Two levels of 256 folders: a million thumbnails make folders of ~15 files each.
        return self.root / content_hash[:2] / content_hash[2:4] / f"{content_hash}-{size}{SUFFIX}"

    def read(self, content_hash: str, size: int) -> bytes | None:
        try:
            return self.path(content_hash, size).read_bytes()
        except FileNotFoundError:  # never made, or pruned (perhaps by another process)
            return None

    def write(self, content_hash: str, size: int, data: bytes) -> None:
        path = self.path(content_hash, size)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.replace(temp, path)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        self._count(len(data))

    def _count(self, written: int) -> None:
        with self._lock:
            self._used += written
            self._written_in_pass += written
            first, self._measured = not self._measured, True
            over = self._used > self.max_bytes and not self._pruning
            self._pruning = self._pruning or over
        if first:  # what earlier runs left: counted in the background, not by this request
            threading.Thread(target=self._measure, name="thumbnail-measure", daemon=True).start()
        if over:
            threading.Thread(target=self._prune, name="thumbnail-prune", daemon=True).start()

    def _measure(self) -> None:
        try:
            found = sum(size for _, size, _ in self._entries())
        except OSError:
            logger.exception("measuring the thumbnail cache failed")
            return
        with self._lock:
            # Files written meanwhile may be counted twice: the cache is pruned a little early.
            self._used += found
            over = self._used > self.max_bytes and not self._pruning
            self._pruning = self._pruning or over
        if over:
            self._prune()

    def _entries(self) -> list[tuple[float, int, Path]]:
        """(last read, size, path) of every cached thumbnail."""
        found = []
        for folder, _, names in os.walk(self.root):
            for name in names:
                if not name.endswith(SUFFIX):
                    continue
                path = Path(folder, name)
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                found.append((max(st.st_atime, st.st_mtime), st.st_size, path))
        return found

    def _prune(self) -> None:
        again = True
        try:
            while again:
                with self._lock:
                    self._written_in_pass = 0
                entries = sorted(self._entries())
                used = sum(size for _, size, _ in entries)
                target = self.max_bytes * PRUNE_TO
                for _, size, path in entries:
                    if used <= target:
                        break
                    path.unlink(missing_ok=True)
                    used -= size
                with self._lock:
                    # Files written during the pass may be listed and counted here too: the
                    # next pass then starts a little early, never late.
                    self._used = used + self._written_in_pass
                    again = self._used > self.max_bytes
        except OSError:
            logger.exception("pruning the thumbnail cache failed")
        finally:
            with self._lock:
                self._pruning = False
