"""Baseline JPEG (4:2:0, libjpeg's quality scaling) as batched tensor operations, for degradations on
the GPU: colour conversion, chroma subsampling, 8x8 DCT, quantisation with each image's own quality,
and the decoder's inverse steps, rounding where libjpeg stores 8-bit samples.

It follows what Pillow's encoder and decoder do (JFIF YCbCr, the tables of the standard's Annex K scaled
as ``jpeg_set_quality`` scales them, box-filtered chroma, triangular "fancy" chroma upsampling), in
floating point rather than libjpeg's fixed point: results differ from Pillow's by rounding, measured in
``tests/test_degradations.py``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

LUMA_TABLE = (
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)
CHROMA_TABLE = (
    17, 18, 24, 47, 99, 99, 99, 99, 18, 21, 26, 66, 99, 99, 99, 99, 24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99, *([99] * 32))
RGB_TO_YCBCR = ((0.299, 0.587, 0.114), (-0.168735892, -0.331264108, 0.5), (0.5, -0.418687589, -0.081312411))
MCU = 16  # a 4:2:0 minimum coded unit: the encoder extends the image to a multiple of it


def quant_tables(quality: Tensor) -> tuple[Tensor, Tensor]:
    """(B, 8, 8) luma and chroma quantisation tables for integer qualities 1..100 (libjpeg's scaling,
    baseline: entries in 1..255)."""
    q = quality.long().clamp(1, 100)
    scale = torch.where(q < 50, 5000 // q, 200 - 2 * q)[:, None]

    def scaled(table: tuple[int, ...]) -> Tensor:
        base = torch.tensor(table, device=quality.device)[None]
        return ((base * scale + 50) // 100).clamp(1, 255).float().view(-1, 8, 8)

    return scaled(LUMA_TABLE), scaled(CHROMA_TABLE)


@lru_cache(maxsize=8)
def _block_dct(device: torch.device) -> Tensor:
    """JPEG's 2-D forward DCT of an 8x8 block (row-major, 64 values) as one 64x64 orthonormal matrix:
    the Kronecker square of the 8-point DCT-II, so that a plane's blocks transform in one matrix product."""
    k = torch.arange(8, dtype=torch.float64)[:, None]
    n = torch.arange(8, dtype=torch.float64)[None, :]
    dct = torch.cos((2 * n + 1) * k * math.pi / 16) * math.sqrt(2 / 8)
    dct[0] /= math.sqrt(2)
    return torch.kron(dct, dct).float().to(device)


def _blocks(plane: Tensor) -> Tensor:
    """(B, H, W) -> (B, H/8 * W/8, 64), each row one 8x8 block in row-major order."""
    b, h, w = plane.shape
    return plane.view(b, h // 8, 8, w // 8, 8).transpose(2, 3).reshape(b, -1, 64)


def _unblocks(blocks: Tensor, h: int, w: int) -> Tensor:
    b = blocks.shape[0]
    return blocks.view(b, h // 8, w // 8, 8, 8).transpose(2, 3).reshape(b, h, w)


def _quantise(plane: Tensor, table: Tensor) -> Tensor:
    """Encode and decode one plane of 8-bit samples: DCT, round(coefficient / table) * table, inverse DCT."""
    dct = _block_dct(plane.device)
    coefficients = _blocks(plane - 128) @ dct.T
    table = table.reshape(-1, 1, 64)
    restored = (torch.round(coefficients / table) * table) @ dct
    return (_unblocks(restored, *plane.shape[-2:]) + 128).round().clamp(0, 255)


def _fancy_upsample(plane: Tensor) -> Tensor:
    """libjpeg's h2v2 'fancy' upsampling: weights 3/4 and 1/4 from the two nearest chroma samples in
    each direction, edges replicated: bilinear interpolation by 2 with half-pixel centres."""
    return F.interpolate(plane[:, None], scale_factor=2, mode="bilinear", align_corners=False)[:, 0]


def jpeg(pixels: Tensor, quality: Tensor) -> Tensor:
    """JPEG-compress and decompress ``pixels`` (B, 3, H, W), RGB 8-bit values as floats in [0, 255],
    each image at its own ``quality`` (B,); returns decoded RGB values in [0, 255]."""
    b, _, h, w = pixels.shape
    pad_h, pad_w = -h % MCU, -w % MCU
    if pad_h or pad_w:  # libjpeg extends the last row and column to whole MCUs
        pixels = F.pad(pixels, (0, pad_w, 0, pad_h), mode="replicate")
    matrix = torch.tensor(RGB_TO_YCBCR, device=pixels.device)
    ycc = torch.einsum("ij,bjhw->bihw", matrix, pixels.float()) + torch.tensor([0.0, 128, 128], device=pixels.device)[:, None, None]
    ycc = ycc.round().clamp(0, 255)
    luma_table, chroma_table = quant_tables(quality)
    y = _quantise(ycc[:, 0], luma_table)
    chroma = F.avg_pool2d(ycc[:, 1:], 2).round()
    cb, cr = (_fancy_upsample(_quantise(chroma[:, i], chroma_table)) for i in (0, 1))
    ycc = torch.stack([y, cb - 128, cr - 128], dim=1)
    rgb = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(matrix), ycc)
    return rgb.round().clamp(0, 255)[..., :h, :w]
