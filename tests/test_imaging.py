"""Image validation and preparation: what each kind of bad file gets."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from PIL import Image

from shared.imaging import InvalidImage, inspect_image, load_rgb, open_image
from shared.settings import ServiceSettings
from tests.builders import image_bytes

LIMITS = ServiceSettings().image_limits


def test_valid_jpeg_is_described():
    info = inspect_image(image_bytes(size=(64, 48)), LIMITS)
    assert (info.width, info.height, info.format) == (64, 48, "JPEG")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty file"),
        (b"just some text, not an image", "not a recognised image format"),
        (image_bytes(size=(300, 300))[:400], "corrupt or truncated"),
        (b"%PDF-1.4 fake", "not a recognised image format"),
    ],
)
def test_bad_bytes_get_a_reason(data: bytes, reason: str):
    with pytest.raises(InvalidImage, match=reason):
        inspect_image(data, LIMITS)


def test_truncated_pixel_data_is_found_by_decoding():
    buf = io.BytesIO()
    Image.effect_noise((400, 300), 64).convert("RGB").save(buf, format="JPEG")
    data = buf.getvalue()
    with pytest.raises(InvalidImage, match="corrupt or truncated image data"):
        inspect_image(data[: len(data) // 2], LIMITS)


def test_over_byte_limit():
    with pytest.raises(InvalidImage, match="file too large"):
        inspect_image(image_bytes(), replace(LIMITS, max_bytes=100))


def test_over_pixel_limit():
    with pytest.raises(InvalidImage, match="too many pixels"):
        inspect_image(image_bytes(size=(200, 200)), replace(LIMITS, max_pixels=10_000))


@pytest.fixture(scope="module")
def huge_canvas() -> bytes:
    """A tiny PNG declaring a canvas of 144,000,000 pixels: past Pillow's own guard (89M
    warned, 179M refused at its default)."""
    buf = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buf, format="PNG")
    return buf.getvalue()


def test_decompression_bomb_is_refused_before_decoding(huge_canvas: bytes):
    # Refused from the header alone, naming the limit set (MAX_IMAGE_PIXELS).
    with pytest.raises(InvalidImage, match=r"too many pixels.*limit 50000000"):
        inspect_image(huge_canvas, replace(LIMITS, max_pixels=50_000_000))


def _webp_declaring(width: int, height: int) -> bytes:
    """An animated WebP of two 4x4 frames whose header declares a canvas of width x height."""
    frames = [Image.new("RGB", (4, 4), colour) for colour in ("red", "blue")]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True)
    data = bytearray(buf.getvalue())
    at = data.index(b"VP8X") + 12  # after the chunk's name, size and flags: width-1, height-1
    data[at : at + 6] = (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    return bytes(data)


def test_a_webp_declaring_a_huge_canvas_is_refused_before_its_decoder_reserves_it():
    # Pillow's WebP decoder takes memory for the whole canvas as it is created, in the open:
    # its own guard, kept, refuses the canvas first.
    with pytest.raises(InvalidImage, match="too many pixels"):
        inspect_image(_webp_declaring(65536, 65536), LIMITS)


def test_a_canvas_within_the_limit_set_opens_whatever_pillows_own_guard(huge_canvas: bytes):
    image = open_image(huge_canvas, replace(LIMITS, max_pixels=200_000_000))
    assert image.size == (12000, 12000)  # the header only: no pixel decoded


def test_one_pixel_side_is_degenerate():
    with pytest.raises(InvalidImage, match="degenerate"):
        inspect_image(image_bytes(size=(1, 50), fmt="PNG"), LIMITS)


def test_load_rgb_flattens_alpha_on_white():
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))
    buf = io.BytesIO()
    rgba.save(buf, format="PNG")
    image = load_rgb(buf.getvalue(), LIMITS, max_side=64)
    assert image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 255, 255)


def test_load_rgb_applies_exif_orientation():
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buf = io.BytesIO()
    image.save(buf, format="JPEG", exif=exif)
    assert load_rgb(buf.getvalue(), LIMITS, max_side=64).size == (20, 40)


def test_load_rgb_converts_grayscale_and_shrinks():
    data = image_bytes(size=(800, 400), mode="L", fmt="PNG")
    image = load_rgb(data, LIMITS, max_side=100)
    assert image.mode == "RGB"
    assert max(image.size) == 100
