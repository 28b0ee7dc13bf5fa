"""The L2 restoration backbone f of DifFace: LQ face -> a blurry but faithful estimate x̂0."""

from __future__ import annotations

import torch
from diffusers.configuration_utils import ConfigMixin, register_to_config
from diffusers.models.modeling_utils import ModelMixin
from torch import nn


class ResBlock(nn.Module):
    def __init__(self, channels: int, groups: int = 8) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
            nn.GroupNorm(groups, channels), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RestorationNet(ModelMixin, ConfigMixin):
    """A compact residual U-Net; images in [-1, 1], output = input + predicted correction."""

    @register_to_config
    def __init__(
        self,
        in_channels: int = 3,
        block_out_channels: tuple[int, ...] = (32, 64, 128),
        blocks_per_level: int = 2,
        norm_num_groups: int = 8,
    ) -> None:
        super().__init__()
        chans = list(block_out_channels)
        self.conv_in = nn.Conv2d(in_channels, chans[0], 3, padding=1)
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        for i, ch in enumerate(chans):
            self.down.append(nn.Sequential(*[ResBlock(ch, norm_num_groups) for _ in range(blocks_per_level)]))
            if i + 1 < len(chans):
                self.downsample.append(nn.Conv2d(ch, chans[i + 1], 3, stride=2, padding=1))
        self.upsample = nn.ModuleList()
        self.up = nn.ModuleList()
        for i in reversed(range(len(chans) - 1)):
            self.upsample.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                               nn.Conv2d(chans[i + 1], chans[i], 3, padding=1)))
            self.up.append(nn.Sequential(nn.Conv2d(2 * chans[i], chans[i], 1),
                                         *[ResBlock(chans[i], norm_num_groups) for _ in range(blocks_per_level)]))
        self.conv_out = nn.Sequential(nn.GroupNorm(norm_num_groups, chans[0]), nn.SiLU(),
                                      nn.Conv2d(chans[0], in_channels, 3, padding=1))
        nn.init.zeros_(self.conv_out[-1].weight)
        nn.init.zeros_(self.conv_out[-1].bias)

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(lq)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h)
            if i < len(self.downsample):
                skips.append(h)
                h = self.downsample[i](h)
        for upsample, block in zip(self.upsample, self.up):
            h = block(torch.cat([upsample(h), skips.pop()], dim=1))
        return lq + self.conv_out(h)
