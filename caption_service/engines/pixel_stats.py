"""Image statistics turned into words: the vocabulary of the pixel describer.

Everything here is measured from pixels; nothing is guessed about objects or scenes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

# Hue ranges in degrees, checked in order, for chromatic pixels.
_HUES = (
    (15.0, "red"),
    (40.0, "orange"),
    (70.0, "yellow"),
    (165.0, "green"),
    (185.0, "teal"),
    (255.0, "blue"),
    (290.0, "purple"),
    (340.0, "pink"),
    (360.0, "red"),
)


@dataclass(frozen=True)
class PixelStats:
    width: int
    height: int
    brightness: float  # mean luminance, 0..1
    saturation: float  # mean HSV saturation, 0..1
    contrast: float  # standard deviation of luminance
    detail: float  # mean absolute luminance gradient
    colors: list[tuple[str, float]]  # named colours with their share, largest first
    top_color: str
    bottom_color: str


# Every name a pixel can get, as the small integer codes _color_names works with: comparing
# and counting codes is a hundred times faster than sorting an array of strings.
_NAMES = (*dict.fromkeys(name for _, name in _HUES), "brown", "gray", "white", "black")
_CODE = {name: np.uint8(code) for code, name in enumerate(_NAMES)}

# What each byte of an HSV channel stands for (0..1), and what it says about a pixel's name:
# every rule looks at one channel, so a table of 256 per rule decides it by lookup.
_LEVEL = np.arange(256, dtype=np.float32) / 255.0
_DEGREES = _LEVEL * 360.0


def _hue_codes() -> np.ndarray:
    codes = np.full(256, _CODE["red"], dtype=np.uint8)
    lower = 0.0
    for upper, name in _HUES:
        codes[(_DEGREES >= lower) & (_DEGREES < upper)] = _CODE[name]
        lower = upper
    return codes


_HUE_CODE = _hue_codes()
_BROWN_HUE = (_DEGREES >= 10) & (_DEGREES < 45)
_BROWN_VALUE = _LEVEL < 0.6
_BROWN_SATURATION = _LEVEL > 0.25
_ACHROMATIC = _LEVEL < 0.18  # of saturation
_WHITE = _LEVEL > 0.82  # of value
_BLACK = _LEVEL < 0.18  # of value


def _color_names(hsv: np.ndarray) -> np.ndarray:
    """Name every pixel of an HSV image's bytes (as a code of _NAMES): black, white, gray,
    brown or a hue name."""
    # Each channel made contiguous once: take() on it is twice as fast as indexing a view.
    h, s, v = (np.ascontiguousarray(hsv[..., channel]) for channel in range(3))
    names = _HUE_CODE.take(h)
    names[_BROWN_HUE.take(h) & _BROWN_VALUE.take(v) & _BROWN_SATURATION.take(s)] = _CODE["brown"]
    achromatic = _ACHROMATIC.take(s)
    names[achromatic] = _CODE["gray"]
    names[achromatic & _WHITE.take(v)] = _CODE["white"]
    names[_BLACK.take(v)] = _CODE["black"]
    return names


def _shares(names: np.ndarray) -> list[tuple[str, float]]:
    """Each name present with its share, largest first; ties in alphabetical order."""
    counts = np.bincount(names.ravel(), minlength=len(_NAMES))
    total = counts.sum()
    present = sorted((_NAMES[code], int(n)) for code, n in enumerate(counts.tolist()) if n)
    ranked = sorted(((name, n / total) for name, n in present), key=lambda x: -x[1])
    return [(name, float(share)) for name, share in ranked]


@dataclass(frozen=True)
class AnalysisCopy:
    """What the statistics are measured on: an image shrunk to a small copy, held as the
    copy's RGB bytes, and the image's own size."""

    rgb: bytes
    size: tuple[int, int]
    width: int
    height: int


def analysis_copy(image: Image.Image, side: int = 96) -> AnalysisCopy:
    """The small copy: statistics barely change below ~100 px. Shrinking is Pillow's C code,
    which lets other threads run meanwhile."""
    small = image.copy()
    small.thumbnail((side, side), Image.Resampling.BILINEAR)
    return AnalysisCopy(small.tobytes(), small.size, *image.size)


def _mean_step(luma: np.ndarray, axis: int) -> np.float32:
    """The mean brightness change between neighbours along `axis`: none (0) where the image is
    one pixel across, rather than the NaN of an empty mean. In float32, as the sum was before."""
    steps = np.abs(np.diff(luma, axis=axis))
    return steps.mean() if steps.size else np.float32(0.0)


def measure_copy(copy: AnalysisCopy) -> PixelStats:
    """The statistics of an image, from its analysis copy."""
    width, height = copy.size
    pixels = np.frombuffer(copy.rgb, dtype=np.uint8).reshape(height, width, 3)
    rgb = pixels.astype(np.float32) / 255.0
    small = Image.frombuffer("RGB", copy.size, copy.rgb, "raw", "RGB", 0, 1)
    hsv_bytes = np.asarray(small.convert("HSV"))
    hsv = hsv_bytes.astype(np.float32) / 255.0
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    names = _color_names(hsv_bytes)
    rows = names.shape[0]
    third = max(1, rows // 3)
    grad = _mean_step(luma, axis=0) + _mean_step(luma, axis=1)
    return PixelStats(
        width=copy.width,
        height=copy.height,
        brightness=float(luma.mean()),
        saturation=float(hsv[..., 1].mean()),
        contrast=float(luma.std()),
        detail=float(grad),
        colors=_shares(names),
        top_color=_shares(names[:third])[0][0],
        bottom_color=_shares(names[rows - third :])[0][0],
    )


def measure(image: Image.Image, side: int = 96) -> PixelStats:
    """Measure an RGB image on a small copy."""
    return measure_copy(analysis_copy(image, side))


def brightness_word(value: float) -> str:
    if value < 0.22:
        return "very dark"
    if value < 0.38:
        return "dark"
    if value < 0.62:
        return "evenly lit"
    if value < 0.8:
        return "bright"
    return "very bright"


def saturation_word(value: float) -> str:
    if value < 0.08:
        return "grayscale"
    if value < 0.25:
        return "muted"
    if value < 0.5:
        return "colorful"
    return "vivid"


def contrast_word(value: float) -> str:
    if value < 0.12:
        return "low contrast"
    if value < 0.24:
        return "moderate contrast"
    return "high contrast"


def detail_word(value: float) -> str:
    if value < 0.04:
        return "smooth"
    if value < 0.1:
        return "moderately textured"
    return "highly textured"


def orientation_word(width: int, height: int) -> str:
    ratio = width / height
    if ratio > 1.15:
        return "landscape"
    if ratio < 0.87:
        return "portrait"
    return "square"
