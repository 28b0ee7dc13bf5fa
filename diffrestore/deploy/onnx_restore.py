"""The reference restore of an exported pipeline in numpy + onnxruntime, without torch.

``OnnxRestorer(folder)`` reads the folder written by ``diffrestore-export --onnx`` (``pipeline.json`` and
one ONNX file per network) and restores aligned faces the way ``DiffRestorePipeline.__call__`` does
with identity guidance off: backbone estimate f(y), its latent diffused to ``start_t``, the respaced
DDIM chain conditioned on E(y), the VQGAN decoder (through the codebook), the colour fix against f(y).

The initial noise is torch's: ``torch_randn`` replays ``torch.Generator().manual_seed(seed)`` followed by
``torch.randn`` on the CPU (mt19937 and torch's Box-Muller over blocks of 16), so ``seed=`` gives the
noise of ``pipe(face, generator=torch.Generator().manual_seed(seed))`` and ``face_seed`` that of
``diffrestore --aligned``.

This module imports neither torch nor anything that does (the CI test checks it).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import onnxruntime as ort
from PIL import Image

LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)  # BT.601, as diffrestore.colorfix


# --------------------------------------------------------------------------------------------------
# torch's CPU random numbers


def torch_randn(shape: Sequence[int], seed: int) -> np.ndarray:
    """``torch.randn(shape, generator=torch.Generator().manual_seed(seed))`` on the CPU, float32.

    torch draws 24-bit uniforms from mt19937 (seeded with the seed's low 32 bits, as numpy's legacy
    seeding) and turns each block of 16 into normals with Box-Muller, u1 from the first 8 and u2 from
    the last 8; when 16 does not divide the count, 16 more uniforms redo the last 16 values. Its AVX2 path differs from this in
    the last bit of float32."""
    count = int(np.prod(shape))
    if count < 16:
        raise ValueError(f"torch_randn: {count} values; torch draws fewer than 16 another way (not replayed)")
    bits = np.random.MT19937()
    bits._legacy_seeding(int(seed) & 0xFFFFFFFF)
    uniforms = (bits.random_raw(count + (16 if count % 16 else 0)) & 0xFFFFFF).astype(np.float64) * 2.0 ** -24
    uniforms = uniforms.astype(np.float32).astype(np.float64)
    out = np.empty(count, dtype=np.float64)
    for start in range(0, count - 15, 16):
        out[start:start + 16] = _box_muller(uniforms[start:start + 16])
    if count % 16:  # torch overwrites the last 16 values from 16 more uniforms
        out[count - 16:] = _box_muller(uniforms[count:])
    return out.astype(np.float32).reshape(tuple(shape))


def _box_muller(block: np.ndarray) -> np.ndarray:
    u1, u2 = 1.0 - block[:8], block[8:]
    radius, theta = np.sqrt(-2.0 * np.log(u1)), 2.0 * np.pi * u2
    return np.concatenate([radius * np.cos(theta), radius * np.sin(theta)])


def face_seed(seed: int, key: str) -> int:
    """``diffrestore.restore.face_seed``: the seed of the face with ``key`` (its file's relative path)."""
    return (int(seed) + zlib.crc32(key.encode("utf-8"))) % (2 ** 63)


# --------------------------------------------------------------------------------------------------
# the schedule and the sampler


def alphas_cumprod(scheduler: dict) -> np.ndarray:
    """The training schedule's cumulative alphas (float32), as diffusers' DDIMScheduler builds them."""
    steps, start, end = scheduler["num_train_timesteps"], scheduler["beta_start"], scheduler["beta_end"]
    schedule = scheduler["beta_schedule"]
    if scheduler.get("trained_betas") is not None:
        betas = np.asarray(scheduler["trained_betas"], dtype=np.float32)
    elif schedule == "linear":
        betas = np.linspace(start, end, steps, dtype=np.float32)
    elif schedule == "scaled_linear":
        betas = (np.linspace(start ** 0.5, end ** 0.5, steps, dtype=np.float32) ** 2).astype(np.float32)
    else:
        raise ValueError(f"pipeline.json: beta_schedule {schedule!r} is not supported (linear, scaled_linear)")
    if scheduler.get("prediction_type", "epsilon") != "epsilon":
        raise ValueError(f"pipeline.json: prediction_type {scheduler['prediction_type']!r}: only epsilon is supported")
    return np.cumprod(1.0 - betas, dtype=np.float32)


def respaced_timesteps(start_t: int, steps: int) -> list[int]:
    """``samplers.respaced_timesteps``: linspace(start_t, 0, steps) rounded, decreasing, deduplicated."""
    if steps < 1 or start_t < 0:
        raise ValueError(f"steps must be >= 1 and start_t >= 0, got steps={steps}, start_t={start_t}")
    return sorted({int(t) for t in np.round(np.linspace(start_t, 0, steps))}, reverse=True)


def respaced_alphas(train_alphas: np.ndarray, timesteps: Sequence[int]) -> np.ndarray:
    """abar of the respaced chain at ``timesteps`` (decreasing) as the respaced DDIMScheduler holds them:
    rebuilt in float32 from its betas ``1 - abar[t_i] / abar[t_{i-1}]``."""
    ascending = train_alphas.astype(np.float64)[list(timesteps)[::-1]]
    previous = np.concatenate([[1.0], ascending[:-1]])
    betas = (1.0 - ascending / previous).astype(np.float32)
    return np.cumprod(1.0 - betas, dtype=np.float32)[::-1]


def ddim_step(eps: np.ndarray, x: np.ndarray, alpha: float, alpha_prev: float) -> np.ndarray:
    """DDIM with eta = 0: x_{t-1} from x_t and the predicted noise."""
    x0 = (x - np.sqrt(1.0 - alpha) * eps) / np.sqrt(alpha)
    return (np.sqrt(alpha_prev) * x0 + np.sqrt(1.0 - alpha_prev) * eps).astype(np.float32)


# --------------------------------------------------------------------------------------------------
# the colour fix (diffrestore.colorfix)


def _blur(images: np.ndarray, dilation: int) -> np.ndarray:
    """3x3 binomial blur with holes, replicate padding, as two 1-D passes."""
    padded = np.pad(images, ((0, 0), (0, 0), (dilation, dilation), (dilation, dilation)), mode="edge")
    d, height, width = dilation, images.shape[2], images.shape[3]
    rows = (padded[:, :, :height] + 2 * padded[:, :, d:d + height] + padded[:, :, 2 * d:2 * d + height]) / 4
    return (rows[:, :, :, :width] + 2 * rows[:, :, :, d:d + width] + rows[:, :, :, 2 * d:2 * d + width]) / 4


def low_frequency(images: np.ndarray, levels: int) -> np.ndarray:
    for level in range(levels):
        images = _blur(images, 2 ** level)
    return images


def luma(images: np.ndarray) -> np.ndarray:
    return np.einsum("bchw,c->bhw", images, LUMA_WEIGHTS)[:, None]


def color_fix(images: np.ndarray, reference: np.ndarray, kind: str, levels: int) -> np.ndarray:
    """``chroma`` (the default), ``wavelet`` or ``none``, against ``reference`` (the backbone estimate)."""
    if kind == "none":
        return images
    fixed = images - low_frequency(images, levels) + low_frequency(reference, levels)
    if kind == "wavelet":
        return fixed
    if kind == "chroma":
        return reference + (luma(fixed) - luma(reference))
    raise ValueError(f"color_fix {kind!r}: must be one of chroma, wavelet, none")


# --------------------------------------------------------------------------------------------------
# the restorer


@dataclass
class OnnxSettings:
    """The settings the reference restore follows (``SamplingOptions``' defaults: the default preset)."""

    steps: int = 10
    start_t: int = 100
    cfg_scale: float = 1.0
    color_fix: str = "chroma"


class OnnxRestorer:
    """Restores aligned faces with the ONNX networks of an exported pipeline folder."""

    def __init__(self, folder: str | Path, providers: Optional[Sequence[str]] = None,
                 threads: Optional[int] = None) -> None:
        self.folder = Path(folder)
        spec_file = self.folder / "pipeline.json"
        if not spec_file.is_file():
            raise FileNotFoundError(f"{self.folder}: no pipeline.json (write one with diffrestore-export --onnx DIR)")
        self.spec = json.loads(spec_file.read_text())
        if self.spec.get("scheduler_class") != "DDIMScheduler":
            raise ValueError(f"{spec_file}: scheduler {self.spec.get('scheduler_class')}: the reference restore "
                             "runs DDIM only (export a pipeline whose scheduler is DDIMScheduler)")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        providers = list(providers or ["CPUExecutionProvider"])
        self.sessions = {name: ort.InferenceSession(str(self.folder / part["file"]), options, providers=providers)
                         for name, part in self.spec["components"].items() if part["file"].endswith(".onnx")}
        self.train_alphas = alphas_cumprod(self.spec["scheduler"])

    @property
    def resolution(self) -> int:
        return int(self.spec["resolution"])

    def run(self, name: str, **inputs: np.ndarray) -> np.ndarray:
        return self.sessions[name].run(None, inputs)[0]

    @property
    def default_settings(self) -> OnnxSettings:
        """The exported pipeline's default preset (``pipeline.json``'s ``sampling``)."""
        sampling = self.spec["sampling"]
        return OnnxSettings(**{key: sampling[key] for key in ("steps", "start_t", "cfg_scale", "color_fix")})

    def __call__(self, faces: Sequence[Image.Image | np.ndarray], settings: Optional[OnnxSettings] = None,
                 seeds: Sequence[int] | int = 0, noise: Optional[np.ndarray] = None) -> np.ndarray:
        """Aligned faces (PIL images or (H, W, 3) uint8 arrays; resized to the model's resolution) ->
        restored (B, R, R, 3) uint8. ``seeds``: one per face (or one for all), each the seed of a torch
        generator; ``noise`` (B, C, h, w) replaces the noise they give."""
        lq = np.stack([self.to_model(face) for face in faces])
        restored = self.restore(lq, settings or self.default_settings, seeds, noise)
        return np.round((np.clip(restored, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(0, 2, 3, 1)

    def to_model(self, face: Image.Image | np.ndarray) -> np.ndarray:
        """One face -> (3, R, R) float32 in [-1, 1]. Resized by PIL's bicubic filter, which the pipeline's
        antialiased torch bicubic follows up to PIL's rounding to 8 bits."""
        image = face if isinstance(face, Image.Image) else Image.fromarray(np.asarray(face, dtype=np.uint8))
        image = image.convert("RGB")
        if image.size != (self.resolution, self.resolution):
            image = image.resize((self.resolution, self.resolution), Image.BICUBIC)
        return np.asarray(image, dtype=np.float32).transpose(2, 0, 1) / 127.5 - 1.0

    def restore(self, lq: np.ndarray, settings: OnnxSettings, seeds: Sequence[int] | int = 0,
                noise: Optional[np.ndarray] = None) -> np.ndarray:
        """(B, 3, R, R) float32 in [-1, 1] -> restored in [-1, 1] (not clamped)."""
        estimate = np.clip(self.run("backbone", lq=lq), -1, 1)
        condition = self.run("vqgan_encoder", images=lq) if self.spec["condition"] else None
        z_start = self.run("vqgan_encoder", images=estimate)
        if noise is None:
            seeds = [seeds] * len(lq) if isinstance(seeds, int) else list(seeds)
            noise = np.stack([torch_randn(z_start.shape[1:], seed) for seed in seeds])
        z0 = self.sample(z_start, condition, noise, settings)
        restored = self.run("vqgan_decoder", latents=z0)
        return color_fix(restored, estimate, settings.color_fix, self.spec["color_fix_levels"])

    def sample(self, z_start: np.ndarray, condition: Optional[np.ndarray], noise: np.ndarray,
               settings: OnnxSettings) -> np.ndarray:
        """The DifFace chain (``samplers.difface_sample`` with DDIM, eta 0)."""
        timesteps = respaced_timesteps(settings.start_t, settings.steps)
        alphas = respaced_alphas(self.train_alphas, timesteps)
        # DDIM's step after the last: abar = 1 with set_alpha_to_one, else the respaced chain's first abar
        final = 1.0 if self.spec["scheduler"].get("set_alpha_to_one", True) else float(alphas[-1])
        abar = np.float64(self.train_alphas[timesteps[0]])
        z = (np.sqrt(abar) * z_start.astype(np.float64) + np.sqrt(1 - abar) * noise.astype(np.float64))
        z = z.astype(np.float32)
        for i, t in enumerate(timesteps):
            eps = self.eps(z, t, condition, settings.cfg_scale)
            alpha_prev = alphas[i + 1] if i + 1 < len(alphas) else final
            z = ddim_step(eps, z, float(alphas[i]), float(alpha_prev))
        return z

    def eps(self, z: np.ndarray, t: int, condition: Optional[np.ndarray], cfg_scale: float) -> np.ndarray:
        """The UNet's noise prediction, with classifier-free guidance on a zero condition when ``cfg_scale != 1``."""
        if condition is None:
            return self.run("unet", latents=z, timestep=np.full(len(z), t, dtype=np.int64))
        if cfg_scale == 1.0:
            return self.run("unet", latents=z, timestep=np.full(len(z), t, dtype=np.int64), condition=condition)
        both = self.run("unet", latents=np.concatenate([z, z]), timestep=np.full(2 * len(z), t, dtype=np.int64),
                        condition=np.concatenate([condition, np.zeros_like(condition)]))
        eps_cond, eps_uncond = np.split(both, 2)
        return eps_uncond + cfg_scale * (eps_cond - eps_uncond)
