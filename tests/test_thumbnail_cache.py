"""The thumbnail cache on disk: whole files or none, and bounded."""

from __future__ import annotations

import os
import time
from pathlib import Path

from analysis_service.thumbnails.cache import ThumbnailCache

HASHES = [f"{i:064x}" for i in range(12)]


def _cached_bytes(cache: ThumbnailCache) -> int:
    total = 0
    for path in cache.root.rglob("*.jpg"):
        try:
            total += path.stat().st_size
        except FileNotFoundError:  # evicted by the cache's own thread while being counted
            pass
    return total


def test_an_entry_is_read_back_and_no_temporary_file_is_left(tmp_path: Path):
    cache = ThumbnailCache(tmp_path, max_bytes=1 << 20)
    assert cache.read(HASHES[0], 256) is None
    cache.write(HASHES[0], 256, b"jpeg bytes")
    assert cache.read(HASHES[0], 256) == b"jpeg bytes"
    assert cache.read(HASHES[0], 128) is None  # each size is its own entry
    assert [p.name for p in cache.root.rglob("*") if p.is_file()] == [f"{HASHES[0]}-256.jpg"]


def test_past_its_limit_the_least_recently_read_entries_are_removed(tmp_path: Path):
    earlier = ThumbnailCache(tmp_path, max_bytes=1 << 20)  # no pass can start while ages are set
    for i, content_hash in enumerate(HASHES[:9]):
        earlier.write(content_hash, 256, b"x" * 1000)
        os.utime(earlier.path(content_hash, 256), (1000 + i, 1000 + i))  # made and read long ago
    os.utime(earlier.path(HASHES[0], 256), (5000, 1000))  # the oldest, but read since
    cache = ThumbnailCache(tmp_path, max_bytes=10_000)
    for content_hash in HASHES[9:]:  # 12,000 bytes: over the limit, perhaps while a pass runs
        cache.write(content_hash, 256, b"x" * 1000)
    deadline = time.monotonic() + 10
    while (
        cache.path(HASHES[1], 256).exists() or _cached_bytes(cache) > 10_000
    ) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert cache.read(HASHES[1], 256) is None
    assert cache.read(HASHES[0], 256) is not None
    assert all(cache.read(h, 256) is not None for h in HASHES[9:])
    assert _cached_bytes(cache) <= 10_000


def test_files_written_while_a_pass_runs_are_counted_after_it(tmp_path: Path):
    """A pass lists the folder once; what this process writes after the listing still counts."""
    cache = ThumbnailCache(tmp_path, max_bytes=10_000)
    cache._measured = True  # the folder was empty: no background count to race with
    for content_hash in HASHES[:8]:  # 8,000 bytes: under the limit
        cache.write(content_hash, 256, b"x" * 1000)
    list_folder = cache._entries
    late = iter([HASHES[8:]])  # written once, right after the first listing

    def list_then_write():
        found = list_folder()
        for content_hash in next(late, []):
            cache.write(content_hash, 256, b"x" * 1000)
        return found

    cache._entries = list_then_write  # type: ignore[method-assign]
    with cache._lock:
        cache._pruning = True  # this thread runs the pass: the writes start none of their own
    cache._prune()  # the listing finds 8,000 bytes; 4,000 more land after it
    assert _cached_bytes(cache) <= 10_000


def test_what_an_earlier_process_left_counts_toward_the_limit(tmp_path: Path):
    earlier = ThumbnailCache(tmp_path, max_bytes=1 << 20)
    for content_hash in HASHES[:11]:
        earlier.write(content_hash, 256, b"x" * 1000)
    cache = ThumbnailCache(tmp_path, max_bytes=10_000)
    cache.write(HASHES[11], 256, b"x" * 1000)  # its first write: the 11,000 bytes found count
    deadline = time.monotonic() + 10
    while _cached_bytes(cache) > 10_000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert _cached_bytes(cache) <= 10_000
    assert cache.read(HASHES[11], 256) is not None
