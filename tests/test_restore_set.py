"""diffrestore-eval-restore's geometry: a set of known framing is cropped to the model's template and
pasted back in place (checked with a stand-in model that returns its input)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from diffrestore.models.builders import load_template, template_for_size
from diffrestore.evaluation.features import resolve_template
from diffrestore.evaluation.restore_set import main
from diffrestore.io import load_image, pil_to_tensor
from diffrestore.pipeline.options import RestoreOptions
from diffrestore.pipeline.restore import FaceRestorer, framing_matrix

CELEBAHQ = sorted((Path(__file__).parent / "assets" / "celebahq").iterdir())


@dataclass
class EchoRestorer(FaceRestorer):
    """A FaceRestorer whose model changes nothing: output = aligned input."""

    options: RestoreOptions
    resolution: int = 128
    template: np.ndarray = None

    def __post_init__(self):
        self.template = load_template("utkface_128", self.resolution)
        self.keys = []

    def restore_aligned(self, images, keys):
        self.keys += list(keys)
        return [image.clone() for image in images]


def test_framing_matrix_maps_the_set_template_onto_the_model_template():
    restorer = EchoRestorer(RestoreOptions())
    matrix = framing_matrix("ffhq_512", 512, restorer.template)
    source = load_template("ffhq_512", 512)
    mapped = source @ matrix[:, :2].T + matrix[:, 2]
    assert np.abs(mapped - restorer.template).max() < 3.0  # a similarity fit of 5 points, px at 128


def test_an_unchanged_face_pastes_back_to_the_input():
    image = pil_to_tensor(load_image(CELEBAHQ[0]))
    restorer = EchoRestorer(RestoreOptions(detail=1.0))
    out = restorer.restore_framed([image], ["a"], "ffhq_512")[0]
    assert restorer.keys == ["a"]
    assert torch.allclose(out, image, atol=1e-4)  # detail=1 puts back all the photo's own detail

    restorer = EchoRestorer(RestoreOptions(detail=0.0))
    out = restorer.restore_framed([image], ["a"], "ffhq_512")[0]
    assert torch.equal(out[:, :8, :8], image[:, :8, :8])  # outside the face crop: untouched
    centre = (slice(None), slice(200, 330), slice(190, 320))  # eyes to mouth
    difference = (out[centre] - image[centre]).abs()
    assert difference.mean() < 0.05 and difference.max() > 0.01  # the 128-px round trip, in place


def test_the_backbone_only_switch_restores_a_set_and_an_unknown_key_is_refused(tmp_path, capsys):
    """The ablation switches of the sweeps reach diffrestore-eval-restore (the backbone-only rows of
    docs/evaluation.md); an unknown key names itself before a model loads."""
    lq = tmp_path / "lq"
    lq.mkdir()
    load_image(CELEBAHQ[0]).save(lq / "a.png")
    assert main(["--lq", str(lq), "--out", str(tmp_path / "out"), "backbone_only=true", "device=cpu"]) == 0
    restored = pil_to_tensor(load_image(tmp_path / "out" / "a.png"))
    assert restored.shape == pil_to_tensor(load_image(lq / "a.png")).shape
    with pytest.raises(Exception, match="backbone_onyl"):
        main(["--lq", str(lq), "--out", str(tmp_path / "out2"), "backbone_onyl=true"])


def test_the_framing_defaults_to_the_bundled_template_of_the_set_size():
    """Without --framing/--template a 512-px set is taken as FFHQ-aligned (real photos, CelebA-Test), a
    128-px set as UTKFace's crops; the evaluation reads it the same way."""
    assert template_for_size(512) == "ffhq_512"
    assert template_for_size(128) == "utkface_128"
    assert resolve_template(None, 512)[1] == "ffhq_512"
    assert np.allclose(resolve_template(None, 512)[0], load_template("ffhq_512", 512))
    with pytest.raises(ValueError, match="100 px.*name the faces' template"):
        template_for_size(100)


def test_an_unknown_framing_is_refused_before_a_model_loads(tmp_path, capsys, monkeypatch):
    lq = tmp_path / "lq"
    lq.mkdir()
    load_image(CELEBAHQ[0]).resize((100, 100)).save(lq / "small.png")
    monkeypatch.setattr("diffrestore.evaluation.restore_set.AblationRestorer.from_options",
                        lambda options: pytest.fail("the model loaded before the framing was checked"))
    assert main(["--lq", str(lq), "--out", str(tmp_path / "out"), "--framing", "ffhq_513"]) == 2
    error = capsys.readouterr().err
    assert "ffhq_513" in error and "--framing" in error
    assert not (tmp_path / "out").exists()


def test_the_default_path_is_what_diffrestore_aligned_gives(tmp_path):
    """The test sets are scored on the path users get: ``diffrestore --aligned`` on the same files
    gives the same pixels (the same seeds: the file names)."""
    from diffrestore.cli import main as cli_main

    lq = tmp_path / "lq"
    lq.mkdir()
    load_image(CELEBAHQ[1]).resize((320, 320)).save(lq / "b.png")  # any size: restored at 256, resized back
    assert main(["--lq", str(lq), "--out", str(tmp_path / "eval"), "device=cpu"]) == 0
    assert cli_main(["--lq", str(lq), "--out", str(tmp_path / "cli"), "--aligned", "--quiet"]) == 0
    by_eval = np.asarray(load_image(tmp_path / "eval" / "b.png"), dtype=int)
    by_cli = np.asarray(load_image(tmp_path / "cli" / "b.png"), dtype=int)
    assert by_eval.shape == (320, 320, 3) and np.abs(by_eval - by_cli).max() <= 1
