"""The restoration settings, each declared once, here.

The defaults ARE the default preset: ``configs/sample/default.yaml`` sets nothing, the other presets
list only what they change, and the pipeline call, ``FaceRestorer``, ``sample.py`` and the sweeps all
read these dataclasses. ``SamplingOptions`` is what one pipeline call does; ``RestoreOptions`` adds
what restoring files needs (model, sampler, seeds, devices, face handling).

start_t = 100 and identity guidance 0.5 on every 5th step are the bundled model's measured best
trade-off (configs/ablations/start_step.yaml, guidance_scale.yaml, guidance_every.yaml; tables in
docs/ablations.md): guiding more often or harder gains no identity and costs CPU time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, List, Optional, Sequence, TypeVar

from .colorfix import COLOR_FIXES

GUIDANCE_TARGETS = ("backbone", "irn")
GUIDANCE_SCHEDULES = ("constant", "sigma")


def check_choice(name: str, value: object, choices: Sequence) -> None:
    """Refuse ``value`` for the setting ``name`` unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")


@dataclass
class SamplingOptions:
    """What one call of ``DiffRestorePipeline`` does (its keyword arguments)."""

    steps: int = 50  # reverse steps S over [0, start_t]
    start_t: int = 100  # DifFace's N (of 1000): larger = more realism, less fidelity to the backbone estimate
    eta: float = 0.0  # DDIM stochasticity (a DDIMScheduler only)
    guidance: float = 0.5  # identity-guidance step (latent units per guided step); 0 = off
    guidance_every: int = 5  # guide steps 0, k, 2k, ...
    guidance_range: List[float] = field(default_factory=lambda: [0.0, 1.0])  # fraction of the trajectory
    guidance_schedule: str = "constant"  # constant | sigma
    # backbone: phi(f(y)); irn: IRN(y) (CLR-Face), which predicts phi of the HQ face worse on the bundled model
    guidance_target: str = "backbone"
    cfg_scale: float = 1.0  # classifier-free guidance on E(y) (models trained with condition dropout)
    # wavelet: low-frequency colours from the backbone estimate; chroma: all its chroma (keeps blue irises) | none
    color_fix: str = "wavelet"

    def check(self) -> None:
        """Refuse a value that cannot work, naming the setting."""
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.start_t < 0:
            raise ValueError(f"start_t must be >= 0, got {self.start_t}")
        if self.guidance < 0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")
        if len(self.guidance_range) != 2:
            raise ValueError(f"guidance_range must be [start, end], got {list(self.guidance_range)}")
        check_choice("guidance_schedule", self.guidance_schedule, GUIDANCE_SCHEDULES)
        check_choice("guidance_target", self.guidance_target, GUIDANCE_TARGETS)
        check_choice("color_fix", self.color_fix, COLOR_FIXES)


@dataclass
class RestoreOptions(SamplingOptions):
    """What ``FaceRestorer`` and ``sample.py`` read: the sampling settings and the run around them."""

    model: Optional[str] = None  # a pipeline folder; None = the bundled diffrestore/pretrained/utkface128
    # None = the pipeline's own scheduler (DDIM for the bundled model); a name of samplers.SAMPLERS swaps one in
    sampler: Optional[str] = None
    seed: int = 0  # every face's generator is seeded from it and the face's key (file path, face index)
    batch_size: int = 16  # faces per forward pass
    device: str = "auto"  # auto (cuda, mps, cpu) | cuda | cuda:1 | mps | cpu
    dtype: str = "auto"  # auto (bf16 on cuda, fp32 elsewhere) | fp32 | fp16 | bf16
    compile: Optional[str] = None  # torch.compile mode of the UNet (reduce-overhead: CUDA graphs; GPU, large folders)
    aligned: Optional[bool] = None  # True: inputs are aligned faces; False: whole photos; None: per image
    upscale: float = 1.0  # output scale of whole photos (bicubic background) and of aligned faces (of the input size)
    only_center_face: bool = False  # whole photos: restore only the face nearest the centre
    feather: float = 0.06  # soft border of pasted faces, fraction of the face size
    detail: float = 1.0  # pasted faces keep the photo's own detail finer than the model's resolution; 0 = off
    min_face_size: int = 20  # MTCNN: smallest face, pixels
    detection_threshold: float = 0.9  # MTCNN: minimum face score
    save_comparison: bool = False  # also write <name>_comparison<ext>: LQ | restored
    overwrite: bool = False


Options = TypeVar("Options", bound=SamplingOptions)


def with_settings(options: Optional[Options], settings: dict[str, Any]) -> Options | SamplingOptions:
    """``options`` (default: ``SamplingOptions()``) with ``settings`` (keyword arguments) replacing
    fields, checked; an unknown name is refused with the names that exist."""
    options = options if options is not None else SamplingOptions()
    names = {f.name for f in fields(options)}
    unknown = sorted(set(settings) - names)
    if unknown:
        raise TypeError(f"unknown setting {unknown[0]!r}; the settings are {sorted(names)}")
    options = replace(options, **settings) if settings else options
    options.check()
    return options
