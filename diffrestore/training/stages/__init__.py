"""The training stages of diffrestore, by the name a training config gives in ``stage:``.

=========  ==========================  =====================  ==========================================
stage      trains (export folder)      frozen (pretrained.*)  loss
=========  ==========================  =====================  ==========================================
identity   IdentityNet (identity)      -                      cosine to SFace teacher, clean + degraded
vqgan      VQModel (vqgan)             -                      L1 + SSIM/LPIPS + codebook + PatchGAN
backbone   RestorationNet (backbone)   -                      L2 on synthetic pairs
score      UNet2DModel (unet)          vqgan                  epsilon MSE on latents (+ E(y) condition)
irn        IdentityNet (irn)           identity               cosine of irn(y) to phi(x_HQ)
mask       LatentMask (mask)           vqgan, backbone,       identity gain - change - sparsity of one
                                       identity, irn          masked guidance step
=========  ==========================  =====================  ==========================================
"""

from __future__ import annotations

from ..stage import Stage
from .backbone import BackboneStage
from .identity import IdentityStage
from .irn import IRNStage
from .mask import MaskStage
from .score import ScoreStage
from .vqgan import VQGANStage

STAGES: dict[str, type[Stage]] = {
    "identity": IdentityStage,
    "vqgan": VQGANStage,
    "backbone": BackboneStage,
    "score": ScoreStage,
    "irn": IRNStage,
    "mask": MaskStage,
}

__all__ = ["STAGES", "BackboneStage", "IdentityStage", "IRNStage", "MaskStage", "ScoreStage", "VQGANStage"]
