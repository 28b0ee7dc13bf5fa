"""IdentityNet.reframe: a network distilled in one framing, called on faces of another."""

from __future__ import annotations

import numpy as np
import torch

from diffrestore.models.builders import load_template
from diffrestore.models import IdentityNet
from diffrestore.models.identity import reframe_identity


def dots_at(points: np.ndarray, size: int) -> torch.Tensor:
    """A black (1, 3, size, size) image with a white 3x3 dot at each (x, y) point."""
    image = -torch.ones(1, 3, size, size)
    for x, y in np.round(points).astype(int):
        image[..., y - 1:y + 2, x - 1:x + 2] = 1.0
    return image


def brightest(image: torch.Tensor, count: int) -> np.ndarray:
    """(x, y) of the ``count`` brightest separated spots of (1, 3, H, W): greedy, 9x9 suppression."""
    heat = image[0].mean(0).clone()
    spots = []
    for _ in range(count):
        y, x = np.unravel_index(int(heat.argmax()), heat.shape)
        spots.append((x, y))
        heat[max(0, y - 4):y + 5, max(0, x - 4):x + 5] = -2
    return np.array(sorted(spots), dtype=np.float64)


def test_a_reframed_network_sees_the_faces_in_its_own_framing(tmp_path):
    net = IdentityNet(input_size=64, block_out_channels=(8, 16), embedding_dim=16).eval()
    net_template, faces_template = load_template("utkface_128", 64), load_template("celebahq_256", 256)
    reframe_identity(net, net_template, faces_template)
    seen = []
    net.features.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
    net(dots_at(faces_template, 256))
    # the five landmarks of the given framing land on the network's own template (within the dots' blur)
    np.testing.assert_allclose(brightest(seen[0], 5), np.array(sorted(map(tuple, net_template))), atol=1.5)

    net.save_pretrained(tmp_path / "phi")
    loaded = IdentityNet.from_pretrained(tmp_path / "phi").eval()
    faces = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(faces), net(faces))

