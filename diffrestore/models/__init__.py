"""Networks of the pipeline that ``diffusers`` does not provide. The VQGAN is ``diffusers.VQModel``
and the score model ``diffusers.UNet2DModel``."""

from .backbone import RestorationNet
from .discriminator import PatchDiscriminator
from .identity import FacenetIdentity, IdentityNet, SFaceIdentity, SFaceNet, load_identity_folder, sface_model_path
from .mask import LatentMask

__all__ = ["RestorationNet", "PatchDiscriminator", "IdentityNet", "FacenetIdentity", "SFaceIdentity", "SFaceNet",
           "load_identity_folder", "sface_model_path", "LatentMask"]
