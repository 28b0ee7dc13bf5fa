"""The learned latent mask M of CLR-Face: where identity gradients may change the latent."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class LatentMask(ModelMixin, ConfigMixin):
    """Values in [0, 1] over a latent of shape (channels, height, width).

    ``per_position=False`` learns one value per channel. ``init`` is the starting mask value.
    """

    @register_to_config
    def __init__(self, channels: int = 4, height: int = 32, width: int = 32,
                 per_position: bool = True, init: float = 0.5) -> None:
        super().__init__()
        shape = (1, channels, height, width) if per_position else (1, channels, 1, 1)
        init = min(max(init, 1e-4), 1 - 1e-4)
        self.logits = nn.Parameter(torch.full(shape, float(torch.logit(torch.tensor(init)))))

    def forward(self) -> torch.Tensor:
        return torch.sigmoid(self.logits)
