"""diffrestore: blind face restoration with a diffusion prior in a VQGAN latent space."""

from importlib import import_module
from typing import Any

# Imported on first use, so that torch-free parts (diffrestore.deploy.onnx_restore) load without torch.
_EXPORTS = {"IdentityNet": ".models", "LatentMask": ".models", "PatchDiscriminator": ".models",
            "RestorationNet": ".models", "RestoreOptions": ".pipeline", "SamplingOptions": ".pipeline",
            "DiffRestorePipeline": ".pipeline", "DiffRestorePipelineOutput": ".pipeline"}

__version__ = "0.1.0"
__all__ = ["DiffRestorePipeline", "DiffRestorePipelineOutput", "IdentityNet", "LatentMask", "PatchDiscriminator",
           "RestorationNet", "RestoreOptions", "SamplingOptions"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'diffrestore' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name], __name__), name)
