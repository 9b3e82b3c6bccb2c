"""A small synthetic dataset for the demo and tests: simple scenes with known variation.

Each image is a sky band over a ground band with an object in the middle. The sky (day,
sunset, night) and the ground vary inside each class, so there is real structure to find.
"""

from __future__ import annotations

import random
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SKIES = {"day": (110, 170, 235), "sunset": (240, 140, 50), "night": (15, 20, 45)}
GROUNDS = {
    "grass": (60, 150, 50),
    "sand": (225, 200, 140),
    "water": (30, 90, 170),
    "snow": (245, 245, 250),
}
CLASSES = {
    "boat": ["water", "sand"],
    "kite": ["grass", "sand", "snow"],
    "bird": ["grass", "water", "snow"],
}


def _jitter(color: tuple[int, int, int], rng: random.Random, amount: int = 18) -> tuple[int, ...]:
    return tuple(max(0, min(255, c + rng.randint(-amount, amount))) for c in color)


def draw_scene(class_name: str, sky: str, ground: str, rng: random.Random) -> Image.Image:
    width, height = rng.choice([(320, 240), (240, 320), (300, 300)])
    image = Image.new("RGB", (width, height), _jitter(SKIES[sky], rng))
    draw = ImageDraw.Draw(image)
    horizon = int(height * rng.uniform(0.45, 0.6))
    draw.rectangle([0, horizon, width, height], fill=_jitter(GROUNDS[ground], rng))
    cx, cy = width // 2 + rng.randint(-30, 30), horizon - rng.randint(10, 40)
    body = _jitter((200, 40, 40) if class_name == "kite" else (70, 60, 50), rng, 40)
    if class_name == "boat":
        draw.polygon(
            [(cx - 50, cy), (cx + 50, cy), (cx + 35, cy + 25), (cx - 35, cy + 25)], fill=body
        )
        draw.polygon([(cx, cy - 60), (cx, cy - 5), (cx + 35, cy - 5)], fill=(250, 250, 245))
    elif class_name == "kite":
        ky = cy - 70
        draw.polygon([(cx, ky - 30), (cx + 22, ky), (cx, ky + 35), (cx - 22, ky)], fill=body)
        draw.line([(cx, ky + 35), (cx - 40, horizon + 30)], fill=(30, 30, 30), width=2)
    else:
        draw.ellipse([cx - 25, cy - 15, cx + 25, cy + 15], fill=body)
        draw.polygon([(cx - 10, cy - 5), (cx - 45, cy - 30), (cx + 5, cy - 8)], fill=body)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))


def make_sample_dataset(root: Path, per_class: int = 40, seed: int = 7) -> Path:
    """Write the dataset (and two files that must be skipped) under root; return root."""
    rng = random.Random(seed)
    for class_name, grounds in CLASSES.items():
        folder = root / class_name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            sky, ground = rng.choice(list(SKIES)), rng.choice(grounds)
            image = draw_scene(class_name, sky, ground, rng)
            fmt = "png" if i % 5 == 0 else "jpg"
            image.save(folder / f"{class_name}_{i:03d}.{fmt}", quality=90)
    (root / "bird" / "notes.txt").write_text("not an image\n")
    (root / "kite" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    return root
