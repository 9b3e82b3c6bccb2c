"""Opening untrusted image bytes safely: formats, size and pixel limits, truncation."""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

# Only raster formats we can decode safely in-process; EPS or PDF would shell out to Ghostscript.
ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".mpo"}
)


def _pillow_guard_at_least(pixels: int) -> None:
    """Every image is opened through _open, which checks its pixels against
    ImageLimits.max_pixels (MAX_IMAGE_PIXELS) from its header. Pillow's own guard, a
    process-wide limit (a warning past 89M pixels, an error past twice that), also runs
    before some decoders reserve their canvas (WebP's): it is kept, but raised to the largest
    limit set, which it would otherwise override."""
    if Image.MAX_IMAGE_PIXELS is not None and Image.MAX_IMAGE_PIXELS < pixels:
        Image.MAX_IMAGE_PIXELS = pixels


class InvalidImage(ValueError):
    """The bytes are not an image this service accepts; the message is the reason."""


@dataclass(frozen=True)
class ImageLimits:
    """What an accepted image may be; the services build it from their settings
    (`ServiceSettings.image_limits`), where MAX_IMAGE_BYTES and MAX_IMAGE_PIXELS get defaults."""

    max_bytes: int
    max_pixels: int
    min_side: int = 2


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    mode: str


def _open(data: bytes, limits: ImageLimits) -> Image.Image:
    if not data:
        raise InvalidImage("empty file (0 bytes)")
    if len(data) > limits.max_bytes:
        raise InvalidImage(f"file too large: {len(data)} bytes > limit {limits.max_bytes}")
    _pillow_guard_at_least(limits.max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"too many pixels (limit {limits.max_pixels}): {exc}") from None
    except UnidentifiedImageError:
        raise InvalidImage("not a recognised image format") from None
    except Exception as exc:  # Pillow raises many types on malformed headers.
        raise InvalidImage(f"corrupt or truncated image header: {exc}") from None
    width, height = image.size
    if width * height > limits.max_pixels:
        raise InvalidImage(
            f"too many pixels: {width}x{height} = {width * height} > limit {limits.max_pixels}"
        )
    if min(width, height) < limits.min_side:
        raise InvalidImage(f"degenerate size {width}x{height}: sides must be >= {limits.min_side}")
    return image


def _decode(image: Image.Image, reduce_to: int | None) -> None:
    """Decode every pixel, so truncated or corrupt data is found now, not later."""
    if reduce_to and image.format == "JPEG":
        # JPEG can decode at 1/2..1/8 scale: the whole stream is still read and checked.
        image.draft("RGB", (reduce_to, reduce_to))
    try:
        image.load()
    except Exception as exc:
        raise InvalidImage(f"corrupt or truncated image data: {exc}") from None


def inspect_image(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Validate image bytes fully and describe them; raise InvalidImage with the reason."""
    image = _open(data, limits)
    info = ImageInfo(image.width, image.height, str(image.format), image.mode)
    # A JPEG at 1/8 scale: every entropy-coded bit is still read and checked (that is where
    # truncation and corruption show), only the inverse DCT is smaller; half the cost.
    _decode(image, reduce_to=1)
    return info


def open_image(data: bytes, limits: ImageLimits) -> Image.Image:
    """The image with only its header read and checked (format, size, pixel limit): its size
    is known, no pixel is decoded yet. rgb_of decodes it."""
    return _open(data, limits)


def rgb_of(image: Image.Image, max_side: int, short_side: int | None = None) -> Image.Image:
    """Decode an opened image, apply EXIF orientation, flatten alpha on white, then shrink:
    short side to short_side when given (models that centre-crop), and long side to
    max_side."""
    _decode(image, reduce_to=short_side or max_side)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # A broken EXIF block should not cost the image.
        pass
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    elif image.mode != "RGB":
        image = image.convert("RGB")
    if short_side and min(image.size) > short_side:
        scale = short_side / min(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0)
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BICUBIC)
    return image


def load_rgb(
    data: bytes, limits: ImageLimits, max_side: int, short_side: int | None = None
) -> Image.Image:
    """open_image, then rgb_of."""
    return rgb_of(open_image(data, limits), max_side, short_side)
