"""Small builders for test images and datasets; keyword defaults, no fixture files."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image


def image_bytes(
    color: tuple[int, int, int] = (40, 90, 200),
    size: tuple[int, int] = (64, 48),
    fmt: str = "JPEG",
    mode: str = "RGB",
    bottom: tuple[int, int, int] | None = None,
    marker: int | None = None,
) -> bytes:
    image = Image.new(mode, size, color if mode != "L" else color[0])
    if bottom is not None:
        image.paste(bottom, (0, size[1] // 2, size[0], size[1]))
    if marker is not None:  # a small corner block that makes the bytes unique
        image.paste((marker % 256, (marker // 256) % 256, 128), (0, 0, 8, 8))
    buf = io.BytesIO()
    image.save(buf, format=fmt)
    return buf.getvalue()


def write_image(path: Path, **kwargs: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".png": "PNG", ".webp": "WEBP", ".gif": "GIF", ".bmp": "BMP"}.get(path.suffix, "JPEG")
    path.write_bytes(image_bytes(fmt=fmt, **kwargs))  # type: ignore[arg-type]
    return path


def make_dataset(root: Path, per_class: int = 6, classes: tuple[str, ...] = ("cat", "dog")) -> Path:
    """Classes whose images split by the colour of their lower half (blue vs green)."""
    for c, name in enumerate(classes):
        for i in range(per_class):
            bottom = (30, 160, 40) if i % 2 else (30, 60, 200)
            top = (150 + (i * 10) % 100, 120 + c * 7, 60 + (i * 20) % 180)
            write_image(
                root / name / f"{i:02d}.jpg",
                color=top,
                bottom=bottom,
                size=(80, 60),
                marker=c * 1000 + i,
            )
    return root
