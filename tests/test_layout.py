"""The ImageFolder layout walk."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis_service.datasets.layout import BadLayout, check_layout, iter_files


def test_iter_files_walks_nested_folders_in_order_and_skips_hidden(tmp_path: Path):
    for rel in [
        "b/x.jpg",
        "a/sub/deep/2.png",
        "a/1.jpg",
        "a/.hidden.jpg",
        ".git/config",
        "top.jpg",
    ]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert list(iter_files(tmp_path)) == [
        ("a/1.jpg", "a"),
        ("a/sub/deep/2.png", "a"),
        ("b/x.jpg", "b"),
        ("top.jpg", None),
    ]


def test_no_class_folders_says_what_is_expected(tmp_path: Path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    with pytest.raises(BadLayout, match="expected <dataset>/<class name>"):
        check_layout(tmp_path)


def test_class_folders_without_images(tmp_path: Path):
    (tmp_path / "cat").mkdir()
    (tmp_path / "cat" / "readme.txt").write_text("hi")
    with pytest.raises(BadLayout, match="no image files"):
        check_layout(tmp_path)


def test_odd_class_names_are_kept(tmp_path: Path):
    for name in ["été café", "n°1 (x)"]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "a.jpg").write_bytes(b"x")
    assert check_layout(tmp_path) == ["n°1 (x)", "été café"]
