"""One image decoder for every path that reads a file: training, calibration, ``eval``,
``predict``, ``bench --input``, sweeps and the Android goldens (numpy and Pillow only).

What cameras and phones write, and what is done to it (``decode_image``):

- **EXIF orientation** (all eight values) is applied, so a photo stored sideways with the tag
  that turns it upright is read upright, as every viewer shows it.
- **Colour profiles**: an embedded ICC profile other than sRGB (Display P3, Adobe RGB, a CMYK
  press profile) is converted to sRGB with LittleCMS (perceptual intent, which matrix-shaper
  profiles such as P3 take as relative colorimetric). Untagged images, and images whose
  profile is sRGB in effect (it moves no colour by more than one level, whatever its name),
  are taken as sRGB unchanged.
- **Bit depth**: 16-bit images (``I;16``: 16-bit grayscale PNG and TIFF) are scaled to 8 bits
  by rounding ``x / 257``; 32-bit integer images (``I``): a 16-bit PNG (Pillow reads some as
  ``I``) as 16-bit, otherwise as 8-bit or 16-bit when the values fit, else scaled by their
  own maximum; float images (``F``) as 0-1 when every value is within
  [0, 1], else as 0-255, clipped. 16-bit RGB/RGBA PNGs and TIFFs Pillow reads at their
  high bytes (within 1 level of ``x / 257``).
- **Transparency** (RGBA, LA, palette with transparency): composited on white
  (``BACKGROUND``), as a viewer shows it on a white page.
- **Modes**: grayscale and 1-bit become gray RGB, palette images their colours, CMYK (without a
  profile) Pillow's conversion, YCbCr/LAB/HSV their RGB.
- **Animations** (GIF, APNG, WebP, multi-page TIFF): the first frame.
- **Formats**: JPEG, PNG, BMP, GIF, TIFF, WebP, AVIF (Pillow's own plugins) and HEIC/HEIF
  (``pillow-heif``, in the light install). Anything else is one line naming the file and
  what it is (a PDF, an SVG drawing, a video, a camera raw file, whose sensor data is not
  developed here, a truncated file: a HEIC/AVIF by its box sizes, as libheif fills the missing
  tiles of a cut phone photo with green); folders skip and count such files.
"""
from __future__ import annotations

import functools
import io
import os

import numpy as np

from ..errors import EdgecnnError, MissingExtraError

#: what transparent pixels are composited on (RGB 0-255)
BACKGROUND = (255, 255, 255)
#: file extensions read as images in folders
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".avif",
                    ".heic", ".heif")

#: Pillow format names of the files folders take
READABLE_FORMATS = ("JPEG", "PNG", "BMP", "GIF", "MPO", "TIFF", "WEBP", "AVIF", "HEIF")

_HEIF = None


def pil_image():
    """PIL.Image (with the HEIC/HEIF opener registered when pillow-heif is installed), or a
    one-line MissingExtraError naming Pillow."""
    global _HEIF
    try:
        from PIL import Image
    except ImportError:
        raise MissingExtraError("reading images", missing="pillow") from None
    if _HEIF is None:
        try:
            from pillow_heif import register_heif_opener

            register_heif_opener()
            _HEIF = True
        except Exception:  # noqa: BLE001 - not installed or no wheel: HEIC stays unreadable
            _HEIF = False
    return Image


def heif_supported() -> bool:
    pil_image()
    return bool(_HEIF)


#: an RGB lattice (17 levels a channel) that tells an sRGB profile from a different one
_PROBE_LEVELS = np.linspace(0, 255, 17).round().astype(np.uint8)


def _probe(mode: str):
    Image = pil_image()
    if mode == "L":
        return Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    grid = np.stack(np.meshgrid(_PROBE_LEVELS, _PROBE_LEVELS, _PROBE_LEVELS), -1)
    rgb = Image.fromarray(grid.reshape(17 * 17, 17, 3), "RGB")
    return rgb.convert(mode) if mode != "RGB" else rgb


@functools.lru_cache(maxsize=32)
def _to_srgb(icc: bytes, mode: str):
    """A LittleCMS transform from the profile ``icc`` (images of ``mode``) to sRGB (RGB, or RGBA
    for RGBA), or None when there is nothing to convert: the profile is sRGB in effect (it maps
    every colour of a 17-level lattice to within one level of itself, whatever its name says;
    a "DCI-P3 ... with sRGB Transfer" profile is not), it is damaged, or LittleCMS cannot
    convert that mode."""
    try:
        from PIL import ImageCms
    except ImportError:  # Pillow built without LittleCMS: colours are taken as they are
        return None
    out = "RGBA" if mode == "RGBA" else "RGB"  # a gray profile's sRGB is gray RGB
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        transform = ImageCms.buildTransform(source, ImageCms.createProfile("sRGB"), mode, out)
        if mode in ("RGB", "RGBA", "L"):
            probe = _probe(mode)
            before = np.asarray(probe.convert(out), np.int16)
            moved = np.abs(np.asarray(ImageCms.applyTransform(probe, transform), np.int16)
                           - before)
            if moved.max() <= 1:
                return None
    except (OSError, ValueError, ImageCms.PyCMSError):
        return None  # a damaged profile, or a mode it cannot take: the pixels stay readable
    return transform


def _srgb(im):
    """``im`` converted from its embedded ICC profile to sRGB (RGB or RGBA out), or as it is
    when it has none or its profile is sRGB in effect."""
    icc = im.info.get("icc_profile")
    if not icc:
        return im
    if im.mode not in ("RGB", "RGBA", "L", "CMYK"):
        im = im.convert("RGBA" if "A" in im.mode or "transparency" in im.info else "RGB")
    transform = _to_srgb(bytes(icc), im.mode)
    if transform is None:
        return im
    from PIL import ImageCms

    try:
        return ImageCms.applyTransform(im, transform)
    except (OSError, ValueError, ImageCms.PyCMSError):
        return im


def _8bit(im):
    """16-bit, 32-bit integer and float images as 8-bit grayscale (``L``), scaled, not clipped
    (before any colour conversion, which would clip them); other images as they are."""
    if im.mode not in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        return im
    a = np.asarray(im)
    if im.mode == "F":
        x = a.astype(np.float64)
        finite = x[np.isfinite(x)]
        if finite.size and finite.min() >= 0.0 and finite.max() <= 1.0:
            x = x * 255.0
        out = np.clip(np.nan_to_num(x), 0, 255)
    else:
        x = a.astype(np.int64)
        top = int(x.max()) if x.size else 0
        if im.mode.startswith("I;16") or (im.mode == "I" and im.format == "PNG"):
            full = 65535
        else:
            full = 255 if top <= 255 else 65535 if top <= 65535 else top
        out = np.clip(x, 0, None) * (255.0 / full)
    scaled = pil_image().fromarray(np.round(out).astype(np.uint8), "L")
    scaled.info = dict(im.info)
    return scaled


def _rgb(im):
    """An 8-bit Pillow image of any mode as RGB, transparency on ``BACKGROUND``."""
    Image = pil_image()
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = im.convert("RGBA")
        base = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(base, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


#: camera raw files: TIFF-like containers whose first image is a small preview; edgecnn does
#: not develop raw sensor data (a raw developer, or the camera's JPEG, gives the photo)
RAW_EXTENSIONS = (".dng", ".cr2", ".cr3", ".nef", ".nrw", ".arw", ".orf", ".rw2", ".raf",
                  ".pef", ".srw", ".raw")
#: what some files that are not photos are, by their first bytes
_NOT_PHOTOS = ((b"%PDF", "a PDF document"), (b"PK\x03\x04", "a ZIP archive"),
               (b"\x1aE\xdf\xa3", "a video (WebM/MKV)"), (b"RIFF", "a RIFF file (AVI/WAV)"))
_HEIF_BRANDS = (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"hevc", b"heis", b"hevx")


def _cut_short(path: str) -> str | None:
    """Why a HEIF/AVIF file (ISO base media: a chain of boxes, each starting with its size) is
    truncated, or None when its top-level boxes fit in it. libheif fills the missing tiles of a
    cut grid image (every phone HEIC) with green instead of failing."""
    end, pos = os.path.getsize(path), 0
    with open(path, "rb") as f:
        while pos + 8 <= end:
            f.seek(pos)
            head = f.read(16)
            size = int.from_bytes(head[:4], "big")
            if size == 1 and len(head) == 16:  # a 64-bit size follows the type
                size = int.from_bytes(head[8:16], "big")
            if size < 8:  # 0: the last box runs to the end; < 8: not a chain to follow
                return None
            pos += size
    if pos <= end:
        return None
    return f"the file ends {pos - end} bytes before its last box does: truncated"


def _describe(path: str) -> str:
    """What a file Pillow cannot identify is, for the error: a HEIC without pillow-heif, a
    document, archive or video by its first bytes, else those bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(256)
    except OSError as exc:
        return exc.strerror or str(exc)
    if not head:
        return "an empty file"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "an AVIF image, and this Pillow cannot read AVIF (pip install -U pillow)"
        if brand in _HEIF_BRANDS:
            if not heif_supported():
                return ("a HEIC/HEIF image, and pillow-heif is not installed (pip install "
                        "pillow-heif)")
            cut = _cut_short(path)
            if cut:
                return f"a damaged HEIF image ({cut})"
            return f"a HEIF file of brand {brand.decode('latin-1')!r} that pillow-heif cannot read"
        return f"a video or audio file (MP4/MOV, brand {brand.decode('latin-1').strip()!r})"
    for magic, what in _NOT_PHOTOS:
        if head.startswith(magic) and not (magic == b"RIFF" and head[8:12] == b"WEBP"):
            return what
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(b"<?xml") and b"<svg" in head.lower() or text.startswith(b"<svg"):
        return "an SVG drawing"
    return f"not an image format edgecnn reads (starts with {head[:8]!r})"


def decode_image(path) -> np.ndarray:
    """An image file as uint8 RGB (height, width, 3), upright and in sRGB (module docstring).
    A file that is not a readable image is a one-line EdgecnnError naming it."""
    Image = pil_image()
    from PIL import ImageOps

    path = os.fspath(path)
    if path.lower().endswith(RAW_EXTENSIONS):
        raise EdgecnnError(f"cannot read image {path}: a camera raw file "
                           f"({os.path.splitext(path)[1][1:].upper()}), whose sensor data edgecnn "
                           f"does not develop; give the camera's JPEG or HEIC, or export one")
    fmt = None
    try:
        with Image.open(path) as im:
            fmt = im.format
            cut = _cut_short(path) if fmt in ("HEIF", "AVIF") else None
            if cut:
                raise OSError(cut)
            if getattr(im, "n_frames", 1) > 1:
                im.seek(0)
            im.load()
            upright = ImageOps.exif_transpose(im) or im
            upright.format = fmt
            if "icc_profile" in im.info and "icc_profile" not in upright.info:
                upright.info["icc_profile"] = im.info["icc_profile"]
            rgb = _rgb(_srgb(_8bit(upright)))
            return np.asarray(rgb, dtype=np.uint8)
    except Image.UnidentifiedImageError:
        raise EdgecnnError(f"cannot read image {path}: {_describe(path)}; remove it or "
                           f"replace it with a jpg/png/webp/heic photo") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        what = f"a damaged {fmt} image" if fmt else "unreadable"
        raise EdgecnnError(f"cannot read image {path}: {what} ({str(exc).splitlines()[0]}); "
                           f"remove it or replace it with a valid jpg/png") from None
