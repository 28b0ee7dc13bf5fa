"""Image loading: every kind of awkward file loads correctly or fails naming the file."""

from __future__ import annotations

import os
import struct
import time
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from diffrestore.io import (IMAGE_EXTENSIONS, ImageLoadError, list_images, load_image, pil_to_tensor,
                            save_image, tensor_to_pil)


def _gradient(w: int = 64, h: int = 48) -> np.ndarray:
    """RGB test pattern whose top-left, top-right and bottom-left corners differ."""
    x = np.linspace(0, 255, w)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h)[:, None].repeat(w, 1)
    return np.stack([x, y, 255 - x], -1).round().astype(np.uint8)


def _assert_fails_naming(path, *words):
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for word in words:
        assert word in message, message


# ------------------------------------------------------------------------------------ bad files

def test_zero_bytes(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    _assert_fails_naming(path, "empty")


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n" * 20)
    _assert_fails_naming(path, "not an image")


def test_truncated(tmp_path, face_paths):
    path = tmp_path / "cut.jpg"
    Image.fromarray(_gradient(256, 256)).save(path, quality=95)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _assert_fails_naming(path, "truncated")


def test_truncated_png(tmp_path):
    path = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    _assert_fails_naming(path, "truncated")


def test_too_small(tmp_path):
    path = tmp_path / "tiny.png"
    Image.new("RGB", (8, 8), (10, 20, 30)).save(path)
    _assert_fails_naming(path, "too small", "8x8")
    assert load_image(path, min_size=8).size == (8, 8)


def _png_header_only(path, width: int, height: int) -> None:
    """A PNG that declares width x height but holds a single tiny IDAT: the size check must come
    from the header, before any decoding."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))


def test_too_large_is_refused_from_the_header(tmp_path):
    path = tmp_path / "huge.png"
    _png_header_only(path, 10000, 10000)
    assert path.stat().st_size < 1000
    start = time.perf_counter()
    _assert_fails_naming(path, "too large", "10000x10000")
    assert time.perf_counter() - start < 1.0


def test_decompression_bomb_never_escapes_unnamed(tmp_path):
    path = tmp_path / "bomb.png"
    _png_header_only(path, 30000, 30000)  # beyond Pillow's own hard limit too
    with pytest.raises(ImageLoadError, match="bomb.png"):
        load_image(path, max_pixels=10**12)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        load_image(tmp_path / "nowhere.png")


# ------------------------------------------------------------------------------------ odd modes

def test_sixteen_bit_grey_is_rescaled_not_clipped(tmp_path):
    path = tmp_path / "grey16.png"
    ramp = np.linspace(0, 65535, 64 * 32).reshape(32, 64).astype(np.uint16)
    Image.fromarray(ramp).save(path)
    with Image.open(path) as raw:
        assert raw.mode.startswith("I")  # really a 16-bit file
    img = load_image(path)
    assert img.mode == "RGB"
    arr = np.asarray(img).astype(int)
    expected = np.round(ramp / 257.0)
    assert np.abs(arr[..., 0] - expected).max() <= 1
    assert arr[..., 0].min() == 0 and arr[..., 0].max() == 255
    assert (arr[..., 0] == arr[..., 2]).all()


def test_sixteen_bit_rgb(tmp_path):
    cv2 = pytest.importorskip("cv2")
    path = tmp_path / "rgb16.png"
    rgb8 = _gradient()
    rgb16 = rgb8.astype(np.uint16) * 257
    cv2.imwrite(str(path), rgb16[..., ::-1].copy())  # OpenCV writes BGR
    assert np.abs(np.asarray(load_image(path)).astype(int) - rgb8).max() <= 1


def test_grey_rgba_palette_cmyk(tmp_path):
    rgb = _gradient()
    grey = Image.fromarray(rgb).convert("L")
    grey.save(tmp_path / "grey.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "grey.png"))[..., 1], np.asarray(grey))

    rgba = np.dstack([rgb, np.zeros(rgb.shape[:2], np.uint8)])
    rgba[:, : rgb.shape[1] // 2, 3] = 255  # left half opaque, right half transparent
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = np.asarray(load_image(tmp_path / "rgba.png"))
    assert np.array_equal(out[:, : rgb.shape[1] // 2], rgb[:, : rgb.shape[1] // 2])
    assert (out[:, rgb.shape[1] // 2:] == 255).all()  # composited on white, not black

    palette = Image.fromarray(rgb).quantize(16)
    palette.save(tmp_path / "palette.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "palette.png")), np.asarray(palette.convert("RGB")))

    transparent = palette.copy()
    transparent.info["transparency"] = 0
    transparent.save(tmp_path / "palette_t.png", transparency=0)
    out = np.asarray(load_image(tmp_path / "palette_t.png"))
    index0 = np.asarray(palette) == 0
    assert index0.any() and (out[index0] == 255).all()

    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    out = np.asarray(load_image(tmp_path / "cmyk.jpg")).astype(int)
    assert load_image(tmp_path / "cmyk.jpg").mode == "RGB"
    assert np.abs(out - rgb).mean() < 8  # JPEG loss only: the inks came back as the same colours


def test_exif_orientation_is_applied(tmp_path):
    rgb = _gradient(64, 48)
    img = Image.fromarray(rgb)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to view"
    img.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    out = load_image(tmp_path / "rotated.jpg")
    assert out.size == (48, 64)
    expected = np.asarray(Image.fromarray(rgb).transpose(Image.Transpose.ROTATE_270)).astype(int)
    assert np.abs(np.asarray(out).astype(int) - expected).mean() < 3


def test_real_assets_load(face_paths, real_lq_paths, whole_paths):
    for path in face_paths + real_lq_paths + whole_paths:
        img = load_image(path)
        assert img.mode == "RGB" and min(img.size) >= 128


# ------------------------------------------------------------------------------------ tensors, saving, listing

def test_tensor_round_trip_is_exact(face_paths):
    img = load_image(face_paths[0])
    tensor = pil_to_tensor(img)
    assert tensor.shape == (3, img.height, img.width) and tensor.dtype == torch.float32
    assert tensor.min() >= -1 and tensor.max() <= 1 and tensor.min() < -0.5 and tensor.max() > 0.5
    assert np.array_equal(np.asarray(tensor_to_pil(tensor)), np.asarray(img))
    clamped = np.asarray(tensor_to_pil(torch.full((3, 4, 4), 3.0)))
    assert (clamped == 255).all()
    with pytest.raises(ValueError, match="shape"):
        tensor_to_pil(torch.zeros(4, 8, 8))


def test_save_image_atomic_and_no_overwrite(tmp_path, face_paths):
    img = load_image(face_paths[0])
    path = tmp_path / "a" / "b" / "face.png"
    save_image(pil_to_tensor(img), path)
    assert np.array_equal(np.asarray(load_image(path)), np.asarray(img))
    with pytest.raises(FileExistsError, match="face.png"):
        save_image(img, path)
    save_image(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), path, overwrite=True)
    assert not np.array_equal(np.asarray(load_image(path)), np.asarray(img))
    assert sorted(p.name for p in path.parent.iterdir()) == ["face.png"]  # no temporary left behind
    assert os.stat(path).st_mode & 0o044  # readable by others, not a private temp file's mode
    with pytest.raises(ValueError, match="extension"):
        save_image(img, tmp_path / "face.xyz")


def test_list_images(tmp_path):
    for name in ["b.PNG", "a.jpg", "sub/c.webp", "sub/deep/d.tiff", "notes.txt", ".hidden.png", ".cache/e.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    names = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert names == ["a.jpg", "b.PNG", "sub/c.webp", "sub/deep/d.tiff"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.jpg", "b.PNG"]
    assert list_images(tmp_path / "notes.txt") == [tmp_path / "notes.txt"]
    with pytest.raises(FileNotFoundError, match="missing"):
        list_images(tmp_path / "missing")
    assert ".webp" in IMAGE_EXTENSIONS and ".tif" in IMAGE_EXTENSIONS
