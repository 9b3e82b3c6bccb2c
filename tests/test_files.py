"""The one checked open of user-named files: what was opened is checked, not the name, so a
file swapped between the check and the open is refused."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from shared import files
from shared.files import UnreadableFile, open_inside_roots, read_inside_roots


@pytest.fixture
def root(tmp_path: Path) -> Path:
    inside = tmp_path / "root"
    inside.mkdir()
    return inside


@contextmanager
def swapped_after_resolving(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The race, made certain: the name is 'resolved' to itself, as if the swap happened just
    after the real resolution and before the open."""
    with monkeypatch.context() as patch:
        patch.setattr(files, "_resolved", lambda path: (path, os.stat(path).st_mode))
        yield


def test_a_regular_file_inside_the_roots_is_read(root: Path):
    (root / "a.jpg").write_bytes(b"abc")
    assert read_inside_roots(root / "a.jpg", [root], 10) == b"abc"
    with open_inside_roots(root / "a.jpg", [root]) as f:
        assert f.read() == b"abc"


def test_a_symlink_swapped_in_at_the_final_component_is_not_followed(
    root: Path, monkeypatch: pytest.MonkeyPatch
):
    (root / "other.jpg").write_bytes(b"other bytes")
    (root / "a.jpg").symlink_to(root / "other.jpg")
    with swapped_after_resolving(monkeypatch), pytest.raises(UnreadableFile, match="symbolic"):
        read_inside_roots(root / "a.jpg", [root], 100)


@pytest.mark.parametrize("proc", [True, False], ids=["proc-fd", "inode-fallback"])
def test_a_folder_swapped_for_a_symlink_out_of_the_roots_is_refused(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, proc: bool
):
    """The name checked lies inside the roots, the file opened through it does not."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(b"secret")
    (root / "cats").symlink_to(outside, target_is_directory=True)
    if not proc:
        monkeypatch.setattr(files, "_FD_PATHS", tmp_path / "no-proc")
    with swapped_after_resolving(monkeypatch), pytest.raises(UnreadableFile, match="outside"):
        read_inside_roots(root / "cats" / "secret.jpg", [root], 100)


def test_special_files_are_refused_without_blocking(root: Path):
    os.mkfifo(root / "pipe.jpg")
    with pytest.raises(UnreadableFile, match="not a regular file"):
        read_inside_roots(root / "pipe.jpg", [root], 100)
    with pytest.raises(UnreadableFile, match="a folder"):
        read_inside_roots(root, [root], 100)


def test_a_file_over_the_limit_is_refused(root: Path):
    (root / "big.jpg").write_bytes(b"x" * 11)
    with pytest.raises(UnreadableFile, match="too large"):
        read_inside_roots(root / "big.jpg", [root], 10)


def test_a_missing_file_says_so_by_its_type(root: Path, tmp_path: Path):
    with pytest.raises(files.MissingFile, match="no such file"):
        open_inside_roots(root / "never.jpg", [root])
    (root / "dangling.jpg").symlink_to(tmp_path / "gone.jpg")
    with pytest.raises(files.MissingFile):
        open_inside_roots(root / "dangling.jpg", [root])
    (root / "dir").mkdir()
    with pytest.raises(UnreadableFile) as refused:
        open_inside_roots(root / "dir", [root])
    assert not isinstance(refused.value, files.MissingFile)
