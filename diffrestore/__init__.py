"""diffrestore: blind face restoration with a diffusion prior in a VQGAN latent space."""

from .models import IdentityNet, LatentMask, PatchDiscriminator, RestorationNet
from .pipeline import DiffRestorePipeline, DiffRestorePipelineOutput, RestoreOptions, SamplingOptions

__version__ = "0.1.0"
__all__ = ["DiffRestorePipeline", "DiffRestorePipelineOutput", "IdentityNet", "LatentMask", "PatchDiscriminator",
           "RestorationNet", "RestoreOptions", "SamplingOptions"]
