"""Image files in and out: robust loading, tensor conversion, atomic saving.

Every image enters the project through ``load_image`` (RGB ``PIL.Image``) and becomes a tensor through
``pil_to_tensor`` ((3, H, W) float in [-1, 1]); ``tensor_to_pil`` and ``save_image`` go back.
"""

from __future__ import annotations

import os
import struct
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""Lower-case suffixes (with the dot, as ``Path.suffix`` gives them) that ``list_images`` picks up."""

DEFAULT_QUALITY = 95
"""JPEG / WebP quality of ``save_image`` unless told otherwise."""
_QUALITY_FORMATS = ("JPEG", "WEBP")
# zlib level of PNG writes: OpenCV's default, as the field's restorers write. Against Pillow's 6, a folder of
# 512-px PNGs goes through 1.5x faster on a 2-core CPU for more bytes (benchmarks/RESULTS.md, session 13).
PNG_COMPRESS_LEVEL = 1
_EXIF_FORMATS = ("JPEG", "PNG", "WEBP")
_ICC_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
ALPHA_FORMATS = ("PNG", "WEBP", "TIFF")
"""Pillow formats ``save_image`` writes with an alpha channel."""
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_RGB_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "P", "PA")  # an ICC profile of these describes RGB data
_EXIF_ORIENTATION = 0x0112
_UMASK = os.umask(0o022)
os.umask(_UMASK)  # read once at import: setting it later, even briefly, would race other threads


class ImageLoadError(ValueError):
    """An image file cannot be used; the message starts with the file's path, then the problem."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = Path(path)
        self.problem = problem


def list_images(root: str | Path, recursive: bool = True) -> list[Path]:
    """Image files under ``root`` (by extension, case-insensitive), sorted; hidden files are skipped.

    A path to a file is returned as ``[path]`` whatever its extension, so a user can name one image.
    """
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such file or directory")
    candidates = root.rglob("*") if recursive else root.iterdir()
    return sorted(
        path for path in candidates
        if path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()
        and not any(part.startswith(".") for part in path.relative_to(root).parts)
    )


def spread_subset(paths: Sequence[Path], limit: int | None) -> list[Path]:
    """At most ``limit`` of ``paths``, evenly spaced over the list (not its head, which sorted
    file names make unrepresentative: UTKFace names start with the age)."""
    paths = list(paths)
    if limit is None or limit >= len(paths):
        return paths
    return [paths[i] for i in np.linspace(0, len(paths) - 1, num=max(limit, 0)).round().astype(int)]


@dataclass
class ImageExtras:
    """What ``load_image`` leaves out of the RGB pixels, for writing it back into a result.

    ``alpha``: the transparency (mode "L", oriented like the pixels) or None; ``exif``: the EXIF block
    without its orientation tag (the pixels are already upright) or None; ``icc_profile``: the colour
    profile when it describes RGB data, else None (``dropped`` then says why).
    """

    alpha: Optional[Image.Image] = None
    exif: Optional[bytes] = None
    icc_profile: Optional[bytes] = None
    dropped: str = ""


def load_image(path: str | Path, min_size: int = 16, max_pixels: int = 50_000_000) -> Image.Image:
    """Read ``path`` as an RGB image with its EXIF orientation applied.

    16-bit and float images are rescaled to 8 bits, alpha is composited on white, palette, grey,
    CMYK and other modes are converted. The size is checked from the header before any pixel is
    decoded, so an oversized file costs neither time nor memory. Raises ``FileNotFoundError`` for a
    missing file and ``ImageLoadError`` (naming the file and the problem) for anything unusable:
    empty, not an image, truncated or corrupt, smaller than ``min_size`` on a side, or more than
    ``max_pixels`` pixels (Pillow's own decompression-bomb limit applies on top of that).
    """
    return _to_rgb(_open_upright(Path(path), min_size, max_pixels))


def load_image_with_extras(path: str | Path, min_size: int = 16, max_pixels: int = 50_000_000
                           ) -> tuple[Image.Image, ImageExtras]:
    """``load_image`` and the file's alpha, EXIF and ICC profile (``ImageExtras``), from one decode."""
    img = _open_upright(Path(path), min_size, max_pixels)
    return _to_rgb(img), _extras_of(img)


def _open_upright(path: Path, min_size: int, max_pixels: int) -> Image.Image:
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise ImageLoadError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            # max_pixels is the limit we enforce; Pillow's softer warning would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                _check_size(path, img.size, min_size, max_pixels)
                img.load()
                return ImageOps.exif_transpose(img)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageLoadError(path, "not an image or an unsupported format") from err
    except Image.DecompressionBombError as err:
        raise ImageLoadError(path, f"too large to decode safely ({err})") from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        raise ImageLoadError(path, f"corrupt or truncated image data ({err})") from err


def _extras_of(img: Image.Image) -> ImageExtras:
    has_alpha = img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info)
    alpha = img.convert("RGBA").getchannel("A") if has_alpha else None
    exif = img.getexif()
    exif.pop(_EXIF_ORIENTATION, None)
    icc = img.info.get("icc_profile") or None
    dropped = ""
    if icc is not None and img.mode not in _RGB_MODES:
        icc, dropped = None, f"its {img.mode} colour profile does not describe the RGB result: not kept"
    return ImageExtras(alpha, exif.tobytes() if len(exif) else None, icc, dropped)


def _check_size(path: Path, size: tuple[int, int], min_size: int, max_pixels: int) -> None:
    width, height = size
    if min(width, height) < min_size:
        raise ImageLoadError(path, f"too small ({width}x{height}; each side must be >= {min_size} px)")
    if width * height > max_pixels:
        raise ImageLoadError(path, f"too large ({width}x{height} = {width * height:,} pixels; "
                                   f"at most {max_pixels:,} allowed)")


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I") or mode == "F":
        return Image.fromarray(_high_depth_to_uint8(np.asarray(img)), mode="L").convert("RGB")
    if mode == "P" and "transparency" in img.info:
        img, mode = img.convert("RGBA"), "RGBA"
    if mode in _ALPHA_MODES:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _high_depth_to_uint8(values: np.ndarray) -> np.ndarray:
    """Single-channel 16/32-bit integer or float pixels to uint8 by their nominal range."""
    values = values.astype(np.float64)
    peak = float(values.max()) if values.size else 0.0
    if np.issubdtype(np.asarray(values).dtype, np.floating) and peak <= 1.0 and values.min() >= 0.0:
        full_scale = 1.0  # float images in [0, 1]
    elif peak <= 255:
        full_scale = 255.0
    elif peak <= 65535:
        full_scale = 65535.0
    else:
        full_scale = peak
    return np.clip(np.round(values * (255.0 / full_scale)), 0, 255).astype(np.uint8)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB ``PIL.Image`` -> float32 tensor (3, H, W) in [-1, 1]."""
    array = np.asarray(img.convert("RGB"), dtype=np.float32)
    return torch.from_numpy(array).permute(2, 0, 1).contiguous() / 127.5 - 1.0


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Tensor (3, H, W) (or (1, 3, H, W)) in [-1, 1] -> RGB ``PIL.Image``; values outside are clamped."""
    if tensor.ndim == 4 and tensor.shape[0] == 1:
        tensor = tensor[0]
    if tensor.ndim != 3 or tensor.shape[0] != 3:
        raise ValueError(f"expected an image tensor of shape (3, H, W), got {tuple(tensor.shape)}")
    array = ((tensor.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)
    return Image.fromarray(array.permute(1, 2, 0).numpy(), mode="RGB")


def is_grey(img: Image.Image) -> bool:
    """The image has no colour: greyscale modes, or RGB(A) whose three channels are equal everywhere."""
    if img.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return True
    rgb = np.asarray(img.convert("RGB"))
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


def as_grey(img: Image.Image) -> Image.Image:
    """``img`` as RGB with its three channels equal (its luma)."""
    return img.convert("L").convert("RGB")


def save_image(image: Image.Image | torch.Tensor, path: str | Path, overwrite: bool = False,
               quality: int = DEFAULT_QUALITY, extras: Optional[ImageExtras] = None) -> None:
    """Write ``image`` to ``path`` (format from the extension), creating parent folders.

    ``quality`` applies to JPEG and WebP. ``extras`` (from ``load_image_with_extras``) puts the
    source's alpha (resized to the image; PNG, WebP and TIFF only), EXIF (JPEG, PNG, WebP) and ICC
    profile back. Written to a temporary file in the same folder and moved into place, so a reader
    never sees a half-written file. Raises ``FileExistsError`` when ``path`` exists and ``overwrite``
    is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass overwrite=True / --overwrite to replace it)")
    if isinstance(image, torch.Tensor):
        image = tensor_to_pil(image)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension {path.suffix!r}")
    image, options = _with_extras(image, fmt, extras or ImageExtras())
    if fmt in _QUALITY_FORMATS:
        options["quality"] = quality
    elif fmt == "PNG":
        options["compress_level"] = PNG_COMPRESS_LEVEL
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=fmt, **options)
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp makes it private; give it normal permissions
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def _with_extras(image: Image.Image, fmt: str, extras: ImageExtras) -> tuple[Image.Image, dict]:
    options = {}
    if extras.alpha is not None and fmt in ALPHA_FORMATS:
        image = image.convert("RGB")
        image.putalpha(extras.alpha.resize(image.size, Image.BICUBIC))
    if extras.exif is not None and fmt in _EXIF_FORMATS:
        options["exif"] = extras.exif
    if extras.icc_profile is not None and fmt in _ICC_FORMATS:
        options["icc_profile"] = extras.icc_profile
    return image, options
