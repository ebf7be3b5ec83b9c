"""Pillow's part: whether some bytes are an image worth mailing, and the two files an
e-mail shows of it.

Pure over bytes (no network, no store), so every rule is testable with an image made in
memory. Why each step:

- The bytes decide what the file is, not the server's Content-Type: Pillow must identify
  one of the four formats mail clients show (JPEG, PNG, GIF, WebP), and it must be the
  one the server declared (a page served as image/jpeg is a page).
- Dimensions are read from the header before any pixel is decoded: a 100 000 × 100 000
  PNG of a few kilobytes would otherwise take gigabytes of memory (a decompression bomb;
  Pillow's own warning is made an error as a second guard).
- EXIF orientation is applied, then nothing of the source's metadata is kept: a phone
  photo's EXIF carries the GPS position of where it was taken. Colours are converted to
  sRGB first, since the ICC profile goes with the rest and mail clients assume sRGB.
- 600 px is the width of the digest's column; the 2x file (1200 px) is for high-density
  screens. Never upscaled: a narrower source is used at its own width, and the 2x height
  is twice the 1x height whenever the 2x width is twice the 1x width, so both files have
  the proportions the <img> width and height promise.
- JPEG (progressive, quality 82) for everything opaque; PNG only when the image has
  transparent pixels, which JPEG cannot carry. An animated GIF or WebP becomes its first
  frame: many mail clients (Outlook) show only that anyway.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

WIDTH = 600  # the digest column, CSS pixels
DENSITY = 2
MIN_WIDTH = 100  # narrower is a tracking pixel, an icon or a spacer, not a lead image
MIN_HEIGHT = 50
MAX_SIDE = 16_000
MAX_PIXELS = 50_000_000  # 50 megapixels: beyond any camera a newsroom uses
JPEG_QUALITY = 82

# Pillow's format name -> the content type the bytes are.
FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp"}
_ROTATED = {5, 6, 7, 8}  # EXIF orientations that swap width and height
_ORIENTATION = 0x0112


class BadImage(ValueError):
    """The bytes are not an image this service mails; the message says why, for a person."""


@dataclass(frozen=True)
class Rendition:
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Prepared:
    """The two files of one image; content_type is theirs (JPEG or PNG), source_type the
    format the bytes arrived in."""

    content_type: str
    source_type: str
    one: Rendition  # WIDTH wide (or the source's width when narrower)
    two: Rendition  # DENSITY × WIDTH wide (or the source's width when narrower)


def _describe(content_type: str) -> str:
    return content_type.removeprefix("image/").upper()


def _sizes(width: int, height: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(1x, 2x) sizes of an upright width × height source: never wider than the source."""
    w1 = min(WIDTH, width)
    w2 = min(DENSITY * WIDTH, width)
    h1 = max(1, round(height * w1 / width))
    h2 = DENSITY * h1 if w2 == DENSITY * w1 else max(1, round(height * w2 / width))
    return (w1, h1), (w2, h2)


def _open(data: bytes) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=list(FORMATS))
    except UnidentifiedImageError:
        raise BadImage("not an image (the bytes are no JPEG, PNG, GIF or WebP)") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage("too many pixels (a decompression bomb?)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadImage(f"not a readable image ({exc})") from None


def _transparent(image: Image.Image) -> bool:
    """Whether any pixel is see-through: only then is PNG worth its size."""
    if not image.has_transparency_data:
        return False
    alpha = image.convert("RGBA").getchannel("A")
    low, _ = alpha.getextrema()
    return bool(low < 255)  # type: ignore[operator]


def _working_copy(image: Image.Image, transparent: bool) -> Image.Image:
    """The upright pixels in RGB(A) or L, converted to sRGB when the source had a profile."""
    if transparent:
        work = image.convert("RGBA")
    elif image.mode in ("L", "LA", "1"):
        work = image.convert("L")
    elif image.mode.startswith("I"):  # 16-bit grey (PNG): scaled, not clipped to white
        work = image.convert("I").point(lambda value: value / 256).convert("L")
    elif image.mode == "CMYK":
        work = image
    else:
        work = image.convert("RGB")
    icc = image.info.get("icc_profile")
    if icc and work.mode in ("RGB", "RGBA", "CMYK"):
        try:
            converted = ImageCms.profileToProfile(
                work,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGBA" if transparent else "RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            converted = None  # a broken profile: the pixels as they are
        if converted is not None:
            work = converted
    if work.mode == "CMYK":
        work = work.convert("RGB")
    return work


def _clean(image: Image.Image) -> Image.Image:
    """The pixels alone: a new image with no info, EXIF, XMP or ICC profile to save."""
    return Image.frombytes(image.mode, image.size, image.tobytes())


def _encode(image: Image.Image, content_type: str) -> bytes:
    out = io.BytesIO()
    if content_type == "image/png":
        _clean(image).save(out, "PNG", optimize=True)
    else:
        _clean(image).save(out, "JPEG", quality=JPEG_QUALITY, progressive=True, optimize=True)
    return out.getvalue()


def prepare(data: bytes, declared: str | None = None) -> Prepared:
    """The 1x and 2x files of an image, or BadImage saying why it cannot be mailed.

    `declared` is the content type the server gave; the bytes must be that format.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _open(data) as image:
            return _prepare(image, declared)


def _prepare(image: Image.Image, declared: str | None) -> Prepared:
    source_type = FORMATS[str(image.format)]
    if declared is not None and declared != source_type:
        raise BadImage(
            f"the server says {_describe(declared)} but the bytes are {_describe(source_type)}"
        )
    stored_w, stored_h = image.size
    if stored_w > MAX_SIDE or stored_h > MAX_SIDE or stored_w * stored_h > MAX_PIXELS:
        raise BadImage(
            f"too large ({stored_w}×{stored_h} px; at most {MAX_SIDE} px a side "
            f"and {MAX_PIXELS // 1_000_000} megapixels)"
        )
    rotated = image.getexif().get(_ORIENTATION) in _ROTATED
    width, height = (stored_h, stored_w) if rotated else (stored_w, stored_h)
    if width < MIN_WIDTH or height < MIN_HEIGHT:
        raise BadImage(f"too small ({width}×{height} px; at least {MIN_WIDTH}×{MIN_HEIGHT} px)")
    size1, size2 = _sizes(width, height)
    if image.format == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale when that is still at least the 2x size:
        # a 24-megapixel photo then costs a quarter of the memory and time.
        image.draft(None, (size2[1], size2[0]) if rotated else size2)
    try:
        image.seek(0)  # the first frame of an animation
        image.load()
        upright = ImageOps.exif_transpose(image) or image
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImage(f"damaged or truncated image ({exc})") from None
    transparent = _transparent(upright)
    work = _working_copy(upright, transparent)
    resample = Image.Resampling.LANCZOS
    two = work if work.size == size2 else work.resize(size2, resample, reducing_gap=3.0)
    one = two if two.size == size1 else two.resize(size1, resample)
    content_type = "image/png" if transparent else "image/jpeg"
    return Prepared(
        content_type=content_type,
        source_type=source_type,
        one=Rendition(_encode(one, content_type), *size1),
        two=Rendition(_encode(two, content_type), *size2),
    )
