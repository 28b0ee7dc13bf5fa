"""The restoration settings, each declared once, here.

The defaults ARE the default preset: ``configs/sample/default.yaml`` sets nothing, the other presets
list only what they change, and the pipeline call, ``FaceRestorer``, ``sample.py`` and the sweeps all
read these dataclasses. ``SamplingOptions`` is what one pipeline call does; ``RestoreOptions`` adds
what restoring files needs (model, scheduler, seeds, devices, face handling).

start_t = 100 and identity guidance 0.5 on every 5th step are the bundled model's measured best
trade-off (configs/ablations/start_step.yaml, guidance_scale.yaml, guidance_every.yaml; tables in
docs/ablations.md): guiding more often or harder gains no identity and costs CPU time.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, List, Optional, Sequence, TypeVar

import torch

from ..sampling import SAMPLERS, SCHEDULERS, chain_problems

from .colorfix import COLOR_FIXES

GUIDANCE_TARGETS = ("backbone", "irn")
GUIDANCE_NETWORKS = ("phi", "sface")
GUIDANCE_SCHEDULES = ("constant", "sigma")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")  # torch.compile's
# auto: reduce-overhead (CUDA graphs, batches padded to fixed shapes) on CUDA, eager elsewhere
COMPILE_CHOICES = ("auto", *COMPILE_MODES)
MAX_UPSCALE = 8  # beyond it the output is only bicubic blur, and 40x made 10240 px images
DTYPES = {"fp32": torch.float32, "float32": torch.float32, "fp16": torch.float16, "float16": torch.float16,
          "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}


def one_of(choices: Sequence) -> str:
    """What a setting with a fixed set of values is told when it has another."""
    return f"must be one of {', '.join(map(str, choices))}"


def failing(rules: Sequence[tuple[str, bool, str]]) -> list[tuple[str, str]]:
    """(setting, what is wrong) of each rule (setting, holds, what is wrong) that does not hold."""
    return [(key, problem) for key, ok, problem in rules if not ok]


def sampler_problem(name: str) -> str:
    """What a sampler name that is not one is told; a scheduler's name (the old meaning of ``sampler``) is
    pointed to ``scheduler``."""
    if name in SCHEDULERS:
        return f"is a scheduler (the update rule): use scheduler={name}; the samplers are {', '.join(SAMPLERS)}"
    return one_of(SAMPLERS)


def check_choice(name: str, value: object, choices: Sequence) -> None:
    """Refuse ``value`` for the setting ``name`` unless it is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} {value!r}: {one_of(choices)}")


@dataclass
class SamplingOptions:
    """What one call of ``DiffRestorePipeline`` does (its keyword arguments)."""

    sampler: str = "difface"  # the algorithm (diffrestore.sampling.SAMPLERS): difface | prior (from pure noise)
    steps: int = 10  # reverse steps S over [0, start_t]
    start_t: int = 100  # DifFace's N (of 1000): larger = more realism, less fidelity to the backbone estimate
    eta: float = 0.0  # DDIM stochasticity (the ddim scheduler only)
    # identity-guidance step (latent units per guided step); 0 = off. On the bundled 256 px model, through SFace
    # towards the IRN (the identity preset), 0.5 lowered the dlib distance by 0.011 (3.8 s.e.; research/LOG.md,
    # session 11's score model; session 12's: -0.012 on 64 faces, session 14); through phi it lowers
    # identity (session 5). Off by default: SFace in torch is an extra (perception) and doubles the CPU time.
    # The 128 px model's preset turns it on
    guidance: float = 0.0
    guidance_every: int = 5  # guide steps 0, k, 2k, ...
    guidance_range: List[float] = field(default_factory=lambda: [0.0, 1.0])  # fraction of the trajectory
    guidance_schedule: str = "constant"  # constant | sigma
    # backbone: the network's embedding of f(y); irn: IRN(y) (CLR-Face), the HQ face's embedding predicted from
    # the LQ face by a network trained for it (the 256 px model's IRN predicts SFace's: 0.580 cosine to SFace(HQ)
    # on 200 test faces against 0.497 for SFace(f(y)); the 128 px model's predicts phi's, worse than phi(f(y)))
    guidance_target: str = "backbone"
    # phi: the pipeline's identity network; sface: SFace in torch (the perception extra), the recogniser phi was
    # distilled from, whose gradient carries identity on faces phi never saw
    guidance_network: str = "phi"
    cfg_scale: float = 1.0  # classifier-free guidance on E(y) (models trained with condition dropout)
    # chroma: the luma of the wavelet fix with all of the backbone estimate's chroma (keeps blue irises and grey
    # photos grey; SFace +0.0057, s.e. 0.0011, on 200 faces, research/LOG.md); wavelet: only its
    # low-frequency colours; none
    color_fix: str = "chroma"

    def problems(self, num_train_timesteps: Optional[int] = None) -> list[tuple[str, str]]:
        """Every value that cannot work, as (setting, what is wrong); seen without a model, except that
        ``start_t`` is bounded by the model's ``num_train_timesteps`` where it is given."""
        low, high = self.guidance_range[0], self.guidance_range[-1]
        rules = [
            ("sampler", self.sampler in SAMPLERS, sampler_problem(self.sampler)),
            ("guidance", self.guidance >= 0, "must be >= 0 (0 = off)"),
            ("guidance_every", self.guidance_every >= 1, "must be at least 1"),
            ("guidance_range", len(self.guidance_range) == 2 and 0 <= low <= high <= 1,
             "must be [start, end] with 0 <= start <= end <= 1"),
            ("guidance_schedule", self.guidance_schedule in GUIDANCE_SCHEDULES, one_of(GUIDANCE_SCHEDULES)),
            ("guidance_target", self.guidance_target in GUIDANCE_TARGETS, one_of(GUIDANCE_TARGETS)),
            ("guidance_network", self.guidance_network in GUIDANCE_NETWORKS, one_of(GUIDANCE_NETWORKS)),
            ("cfg_scale", self.cfg_scale >= 0, "must be >= 0 (1 = off)"),
            ("color_fix", self.color_fix in COLOR_FIXES, one_of(COLOR_FIXES)),
        ]
        return chain_problems(self.start_t, self.steps, num_train_timesteps) + failing(rules)

    def check(self, num_train_timesteps: Optional[int] = None) -> None:
        """Refuse the first value that cannot work, naming the setting."""
        problems = self.problems(num_train_timesteps)
        if problems:
            key, problem = problems[0]
            raise ValueError(f"{key} {getattr(self, key)!r}: {problem}")


@dataclass
class RestoreOptions(SamplingOptions):
    """What ``FaceRestorer`` and ``sample.py`` read: the sampling settings and the run around them."""

    # a pipeline folder or a bundled model's name (celebahq256, utkface128); None = diffrestore/pretrained/celebahq256
    model: Optional[str] = None
    # None = the pipeline's own scheduler (DDIM for the bundled model); a name of sampling.SCHEDULERS swaps one in
    scheduler: Optional[str] = None
    seed: int = 0  # every face's generator is seeded from it and the face's key (file path, face index)
    batch_size: int = 16  # faces per forward pass
    device: str = "auto"  # auto (cuda, mps, cpu) | cuda | cuda:1 | mps | cpu
    dtype: str = "auto"  # auto (bf16 on cuda, fp32 elsewhere) | fp32 | fp16 | bf16
    # torch.compile mode of the UNet (reduce-overhead: CUDA graphs; auto: reduce-overhead on CUDA only; None: eager).
    # Eager by default: the first call compiles for tens of seconds, which only a long run or a server amortises.
    compile: Optional[str] = None
    threads: Optional[int] = None  # torch's CPU threads (None: the idle cores on the CPU; on a GPU 1 beside the
    # folder loop's reading and writing threads, torch's own without them: pipeline.restore.set_threads)
    aligned: Optional[bool] = None  # True: inputs are aligned faces; False: whole photos; None: per image
    upscale: float = 1.0  # output scale of whole photos (bicubic background) and of aligned faces (of the input size)
    only_center_face: bool = False  # whole photos: restore only the face nearest the centre
    feather: float = 0.06  # soft border of pasted faces, fraction of the face size
    detail: float = 1.0  # pasted faces keep the photo's own detail finer than the model's resolution; 0 = off
    min_face_size: int = 20  # MTCNN: smallest face, pixels
    detection_threshold: float = 0.9  # MTCNN: minimum face score
    save_comparison: bool = False  # also write <name>_comparison<ext>: LQ | restored
    overwrite: bool = False

    def problems(self, num_train_timesteps: Optional[int] = None) -> list[tuple[str, str]]:
        rules = [
            ("scheduler", self.scheduler is None or self.scheduler in SCHEDULERS, one_of(SCHEDULERS)),
            ("eta", self.eta >= 0, "must be >= 0"),
            ("eta", self.eta == 0 or self.scheduler in (None, "ddim"), "applies to the ddim scheduler only"),
            ("batch_size", self.batch_size >= 1, "must be at least 1"),
            ("dtype", self.dtype == "auto" or self.dtype in DTYPES, f"must be auto or one of {', '.join(DTYPES)}"),
            ("compile", self.compile is None or self.compile in COMPILE_CHOICES, one_of(COMPILE_CHOICES)),
            ("threads", self.threads is None or self.threads >= 1, "must be at least 1"),
            ("upscale", 0 < self.upscale <= MAX_UPSCALE, f"must be in (0, {MAX_UPSCALE}]"),
            ("feather", 0 <= self.feather <= 0.5, "must be in [0, 0.5]"),
            ("detail", self.detail >= 0, "must be >= 0"),
            ("min_face_size", self.min_face_size >= 1, "must be at least 1 (pixels)"),
            ("detection_threshold", 0 <= self.detection_threshold <= 1, "must be in [0, 1]"),
        ]
        return super().problems(num_train_timesteps) + failing(rules)


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
