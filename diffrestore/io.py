"""Image files in and out: robust loading, tensor conversion, atomic saving.

Every image enters the project through ``load_image`` (RGB ``PIL.Image``) and becomes a tensor through
``pil_to_tensor`` ((3, H, W) float in [-1, 1]); ``tensor_to_pil`` and ``save_image`` go back.
"""

from __future__ import annotations

import os
import struct
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
"""Lower-case suffixes (with the dot, as ``Path.suffix`` gives them) that ``list_images`` picks up."""

_SAVE_OPTIONS = {"JPEG": {"quality": 95}, "WEBP": {"quality": 95}}
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
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


def load_image(path: str | Path, min_size: int = 16, max_pixels: int = 50_000_000) -> Image.Image:
    """Read ``path`` as an RGB image with its EXIF orientation applied.

    16-bit and float images are rescaled to 8 bits, alpha is composited on white, palette, grey,
    CMYK and other modes are converted. The size is checked from the header before any pixel is
    decoded, so an oversized file costs neither time nor memory. Raises ``FileNotFoundError`` for a
    missing file and ``ImageLoadError`` (naming the file and the problem) for anything unusable:
    empty, not an image, truncated or corrupt, smaller than ``min_size`` on a side, or more than
    ``max_pixels`` pixels (Pillow's own decompression-bomb limit applies on top of that).
    """
    path = Path(path)
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
                img = ImageOps.exif_transpose(img)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as err:
        raise ImageLoadError(path, "not an image or an unsupported format") from err
    except Image.DecompressionBombError as err:
        raise ImageLoadError(path, f"too large to decode safely ({err})") from err
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as err:
        raise ImageLoadError(path, f"corrupt or truncated image data ({err})") from err
    return _to_rgb(img)


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


def save_image(image: Image.Image | torch.Tensor, path: str | Path, overwrite: bool = False) -> None:
    """Write ``image`` to ``path`` (format from the extension), creating parent folders.

    Written to a temporary file in the same folder and moved into place, so a reader never sees a
    half-written file. Raises ``FileExistsError`` when ``path`` exists and ``overwrite`` is false.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path}: already exists (pass overwrite=True / --overwrite to replace it)")
    if isinstance(image, torch.Tensor):
        image = tensor_to_pil(image)
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unknown image extension {path.suffix!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            image.save(handle, format=fmt, **_SAVE_OPTIONS.get(fmt, {}))
        os.chmod(tmp_name, 0o666 & ~_UMASK)  # mkstemp makes it private; give it normal permissions
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
