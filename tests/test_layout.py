"""The ImageFolder layout walk."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis_service.datasets.layout import BadLayout, check_layout, iter_files, walk_key


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


def _tree(root: Path) -> None:
    for rel in [
        "a/z.jpg",
        "a/b.jpg",
        "a/sub/deep/2.png",
        "a/sub/1.png",
        "a/sub0/x.png",
        "a.jpg",
        "b/x.jpg",
        "b/empty/.keep",
        "top.jpg",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")


def test_the_walk_order_is_the_order_of_walk_keys(tmp_path: Path):
    _tree(tmp_path)
    walked = [rel for rel, _ in iter_files(tmp_path)]
    # A folder's files before its subfolders: not the relative paths' own order.
    assert walked.index("a/z.jpg") < walked.index("a/sub/1.png")
    assert sorted(walked, key=walk_key) == walked


def test_ranges_of_the_walk_cover_it_once_whatever_the_bounds(tmp_path: Path):
    """Shards of a scan are ranges between walk keys: cut anywhere (at files that exist, or
    at names that do not, as after a file was deleted), they join up to the whole walk."""
    _tree(tmp_path)
    walked = list(iter_files(tmp_path))
    bounds = [rel for rel, _ in walked] + ["a/m.jpg", "a/sub/deep/0.png", "a/suba/q", "c", "0"]
    for lo in bounds:
        for hi in bounds:
            if walk_key(lo) >= walk_key(hi):
                continue
            parts = [
                list(iter_files(tmp_path, None, lo)),
                list(iter_files(tmp_path, lo, hi)),
                list(iter_files(tmp_path, hi, None)),
            ]
            assert [f for part in parts for f in part] == walked, (lo, hi)
            assert all(walk_key(lo) <= walk_key(rel) < walk_key(hi) for rel, _ in parts[1])
