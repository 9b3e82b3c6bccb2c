"""Synthetic benchmark datasets, generated once and cached under .state/bench/."""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw

CLASSES = ("airplane", "bird", "car", "ship")


def _image(rng: random.Random, index: int) -> Image.Image:
    sky = (rng.randint(0, 255), rng.randint(80, 255), rng.randint(120, 255))
    ground = (rng.randint(0, 255), rng.randint(60, 200), rng.randint(0, 160))
    image = Image.new("RGB", (160, 120), sky)
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, rng.randint(50, 90), 160, 120], fill=ground)
    x, y = rng.randint(10, 120), rng.randint(10, 80)
    draw.ellipse([x, y, x + 30, y + 20], fill=(rng.randint(0, 255),) * 3)
    draw.point([(index % 160, (index // 160) % 120)], fill=(index % 256, 0, 0))
    return image


def ensure_dataset(root: Path, count: int, seed: int = 0, classes: int | None = None) -> Path:
    """A folder of `count` small unique JPEGs (reused when present), over four classes or,
    with `classes`, over that many ("class000", ...: an ImageNet-shaped dataset whose
    discovery is many small classes)."""
    marker = root / f".complete-{count}"
    if marker.exists():
        return root
    names = CLASSES if classes is None else tuple(f"class{n:03d}" for n in range(classes))
    rng = random.Random(seed)
    for index in range(count):
        folder = root / names[index % len(names)] / f"part{index // 5000:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        _image(rng, index).save(folder / f"{index:06d}.jpg", quality=85)
    marker.touch()
    return root
