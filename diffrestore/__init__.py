"""diffrestore: blind face restoration with a diffusion prior in a VQGAN latent space."""

from .models import IdentityNet, LatentMask, PatchDiscriminator, RestorationNet
from .options import RestoreOptions, SamplingOptions
from .pipeline import DiffRestorePipeline, DiffRestorePipelineOutput

__version__ = "0.1.0"
__all__ = ["DiffRestorePipeline", "DiffRestorePipelineOutput", "IdentityNet", "LatentMask", "PatchDiscriminator",
           "RestorationNet", "RestoreOptions", "SamplingOptions"]
