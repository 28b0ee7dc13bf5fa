"""The product: ``DiffRestorePipeline`` (aligned faces), its settings, and ``FaceRestorer`` (photos)."""

from .options import RestoreOptions, SamplingOptions
from .pipeline_diffrestore import (BUNDLED_MODEL, PRETRAINED, DiffRestorePipeline, DiffRestorePipelineOutput,
                                   load_model_config, model_folder)

__all__ = ["BUNDLED_MODEL", "PRETRAINED", "DiffRestorePipeline", "DiffRestorePipelineOutput", "RestoreOptions",
           "SamplingOptions", "load_model_config", "model_folder"]
