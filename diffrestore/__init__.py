"""diffrestore: blind face restoration with a diffusion prior in a VQGAN latent space."""

from .models import IdentityNet, LatentMask, PatchDiscriminator, RestorationNet

__version__ = "0.1.0"
__all__ = ["IdentityNet", "LatentMask", "PatchDiscriminator", "RestorationNet"]
