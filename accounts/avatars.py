"""Avatar uploads: only real PNG, JPEG, WebP or GIF images, within size and pixel limits.

An upload's name and Content-Type are the browser's word, so neither is trusted: the bytes
are decoded with Pillow (only the four allowed decoders are tried), the decoded format must
agree with the extension, and the stored file gets a random name with the extension and
Content-Type of what was decoded. An SVG (or HTML) renamed `.png` is refused, so nothing
stored can run script in a browser.
"""

from __future__ import annotations

import secrets
import warnings
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from PIL import Image

# Pillow format name: (extensions it may be uploaded with, the Content-Type it is stored with)
FORMATS: dict[str, tuple[tuple[str, ...], str]] = {
    "PNG": (("png",), "image/png"),
    "JPEG": (("jpg", "jpeg"), "image/jpeg"),
    "WEBP": (("webp",), "image/webp"),
    "GIF": (("gif",), "image/gif"),
}
EXTENSIONS = tuple(ext for exts, _mime in FORMATS.values() for ext in exts)
DEFAULT_MAX_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_PIXELS = 4096 * 4096


def max_bytes() -> int:
    return int(getattr(settings, "AVATAR_MAX_BYTES", DEFAULT_MAX_BYTES))


def max_pixels() -> int:
    return int(getattr(settings, "AVATAR_MAX_PIXELS", DEFAULT_MAX_PIXELS))


def _extension(name: str) -> str:
    return name.rsplit(".", 1)[-1].lower() if "." in name else ""


def _decode(upload: Any) -> tuple[str, tuple[int, int]]:
    """Decode the whole image; return (Pillow format, size). Raise ValidationError otherwise."""
    limit = max_pixels()
    upload.seek(0)
    try:
        # Decompression bombs: Pillow's own limit becomes an error, not a warning.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(upload, formats=list(FORMATS)) as image:
                fmt, size = image.format, image.size
                if size[0] * size[1] > limit:
                    raise ValidationError(
                        f"The image is {size[0]}x{size[1]} pixels; avatars may have at most "
                        f"{limit:,} (AVATAR_MAX_PIXELS).",
                        code="avatar_pixels",
                    )
                image.verify()  # checksums and structure (PNG CRCs)
            upload.seek(0)
            with Image.open(upload, formats=list(FORMATS)) as image:
                image.load()  # every pixel decoded: a truncated file fails here
                if image.format != fmt:
                    raise ValidationError("The image changed format between reads.")
    except ValidationError:
        raise
    # Pillow's decoders raise many kinds of error on hostile bytes (OSError, SyntaxError,
    # ValueError, struct.error, EOFError, ...); every one means "not an allowed image".
    except Exception as err:
        raise ValidationError(
            "The file is not a PNG, JPEG, WebP or GIF image (or it is damaged): upload one of "
            "those.",
            code="avatar_not_image",
        ) from err
    finally:
        upload.seek(0)
    assert fmt is not None
    return fmt, size


def validate_avatar(upload: UploadedFile) -> str:
    """Check an uploaded avatar; return the Content-Type of what it really is."""
    name = upload.name or ""
    ext = _extension(name)
    if ext not in EXTENSIONS:
        raise ValidationError(
            f"{name or 'The file'} is not an allowed image type: use a file ending in "
            f"{', '.join('.' + e for e in EXTENSIONS)}.",
            code="avatar_extension",
        )
    size = upload.size or 0
    if size > max_bytes():
        raise ValidationError(
            f"{name} is {size:,} bytes; avatars may be at most {max_bytes():,} bytes "
            "(AVATAR_MAX_BYTES).",
            code="avatar_size",
        )
    fmt, _pixels = _decode(upload)
    extensions, content_type = FORMATS[fmt]
    if ext not in extensions:
        raise ValidationError(
            f"{name} is a {fmt} image with a .{ext} name: rename it to .{extensions[0]}.",
            code="avatar_mismatch",
        )
    return content_type


def clean_avatar(upload: UploadedFile) -> UploadedFile:
    """Validate, then give the file a random name and the Content-Type of its real format."""
    content_type = validate_avatar(upload)
    upload.content_type = content_type
    upload.name = f"{secrets.token_hex(16)}.{_extension(upload.name or '')}"
    return upload
