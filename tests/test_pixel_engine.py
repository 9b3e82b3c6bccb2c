"""The pixel describer writes what the pixels show."""

from __future__ import annotations

from PIL import Image

from caption_service.engines.pixel import describe


def _split(top: tuple[int, int, int], bottom: tuple[int, int, int], size=(120, 90)) -> Image.Image:
    image = Image.new("RGB", size, top)
    image.paste(bottom, (0, size[1] // 2, size[0], size[1]))
    return image


def test_sky_over_grass_names_both_parts():
    text = describe(_split((70, 130, 230), (40, 160, 50)))
    assert "blue upper part" in text
    assert "green lower part" in text
    assert "landscape" in text


def test_dark_gray_image():
    text = describe(Image.new("RGB", (50, 80), (30, 30, 30)))
    assert "dark" in text
    assert "grayscale" in text
    assert "portrait" in text


def test_bright_snow_scene():
    text = describe(_split((235, 235, 240), (250, 250, 250), size=(60, 60)))
    assert "very bright" in text
    assert "white" in text
    assert "square" in text
