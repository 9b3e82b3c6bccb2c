"""Dataset paths: inside the data roots or refused, with the status each case gets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.paths import (
    InvalidPath,
    NotAFile,
    NotAFolder,
    PathNotFound,
    PathOutsideRoots,
    resolve_file_inside_roots,
    resolve_folder_inside_roots,
    resolve_inside_roots,
)


@pytest.fixture
def roots(tmp_path: Path) -> list[Path]:
    (tmp_path / "data" / "ds").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    return [(tmp_path / "data").resolve()]


def test_absolute_path_inside_root(roots):
    assert resolve_inside_roots(str(roots[0] / "ds"), roots) == roots[0] / "ds"


def test_relative_path_is_looked_up_under_the_roots(roots):
    assert resolve_inside_roots("ds", roots) == roots[0] / "ds"


def test_outside_root_is_forbidden(roots, tmp_path):
    with pytest.raises(PathOutsideRoots) as err:
        resolve_inside_roots(str(tmp_path / "outside"), roots)
    assert err.value.status_code == 403


def test_dotdot_escape_is_forbidden(roots):
    with pytest.raises(PathOutsideRoots):
        resolve_inside_roots(str(roots[0] / "ds" / ".." / ".." / "outside"), roots)


def test_symlink_escape_is_forbidden(roots, tmp_path):
    (roots[0] / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(PathOutsideRoots):
        resolve_inside_roots(str(roots[0] / "link"), roots)


def test_missing_path_is_not_found_and_named(roots):
    with pytest.raises(PathNotFound, match="nope") as err:
        resolve_inside_roots(str(roots[0] / "nope"), roots)
    assert err.value.status_code == 404


def test_file_is_not_a_folder(roots):
    (roots[0] / "file.jpg").write_bytes(b"x")
    with pytest.raises(NotAFolder) as err:
        resolve_folder_inside_roots(str(roots[0] / "file.jpg"), roots)
    assert err.value.status_code == 422


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("~nosuchuser/ds", "unknown home folder"),
        ("ds\0/x", "NUL"),
        ("x" * 300, "longer than 255 bytes"),
        ("ds/\ud800", "not valid Unicode"),
    ],
)
def test_paths_that_cannot_name_a_file_are_404_naming_why(roots, raw: str, says: str):
    with pytest.raises(InvalidPath, match=says) as caught:
        resolve_inside_roots(raw, roots)
    assert caught.value.status_code == 404


def test_a_symlink_loop_is_404(roots):
    (roots[0] / "loop").symlink_to(roots[0] / "loop")
    with pytest.raises(InvalidPath, match="cannot be resolved"):
        resolve_inside_roots("loop", roots)


def test_a_path_through_a_file_does_not_exist(roots):
    (roots[0] / "file.txt").write_text("x")
    with pytest.raises(PathNotFound):
        resolve_inside_roots("file.txt/below", roots)


def test_a_fifo_is_named_as_what_it_is_for_a_folder_or_a_captions_file(roots):
    fifo = roots[0] / "captions.csv"
    os.mkfifo(fifo)
    with pytest.raises(NotAFile, match="FIFO, socket or device"):
        resolve_file_inside_roots(str(fifo), roots, "a file of captions")
    with pytest.raises(NotAFolder, match="FIFO, socket or device"):
        resolve_folder_inside_roots(str(fifo), roots)
    with pytest.raises(NotAFile, match="is a folder; expected a file of captions"):
        resolve_file_inside_roots(str(roots[0] / "ds"), roots, "a file of captions")
