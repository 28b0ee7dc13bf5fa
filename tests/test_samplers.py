"""The samplers (DifFace posterior sampling, the prior), the schedulers they step with and masked identity
guidance (diffrestore.sampling), on hand-made models.

Two score models with known answers:
- the *oracle*: eps computed from a known clean latent z0 (so the x0 prediction is always z0);
- the *Gaussian prior*: data ~ N(mu, s^2 I), whose exact eps is E[eps | z_t] =
  sqrt(1 - a) (z_t - sqrt(a) mu) / (a s^2 + 1 - a), elementwise in z_t.
"""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, DPMSolverMultistepScheduler, PNDMScheduler
from torch import nn

from diffrestore.sampling import schedulers
from diffrestore.sampling import (SAMPLERS, SCHEDULERS, IdentityGuidance, build_respaced_scheduler, clean_latent,
                                  identity_gradient, noise_latent, register_sampler, respaced_timesteps, sample_difface,
                                  sample_prior, unet_eps_model)

SHAPE = (4, 4, 8, 8)


@pytest.fixture(scope="module")
def train_scheduler() -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02,
                         clip_sample=False)


def oracle(train_scheduler, z0, calls=None):
    def eps_model(z_t, t):
        if calls is not None:
            calls.append((t, z_t.clone()))
        a = train_scheduler.alphas_cumprod[t].double()
        return ((z_t.double() - a.sqrt() * z0.double()) / (1 - a).sqrt()).float()
    return eps_model


def gaussian_prior(train_scheduler, mu: float = 0.0, s: float = 0.5):
    def eps_model(z_t, t):
        a = train_scheduler.alphas_cumprod[t].item()
        return (1 - a) ** 0.5 * (z_t - a ** 0.5 * mu) / (a * s * s + 1 - a)
    return eps_model


def as_scheduler(train_scheduler: DDPMScheduler, name: str):
    """The scheduler ``name`` on the training schedule, set the diffusers way."""
    return SCHEDULERS[name].from_config(train_scheduler.config)


def difface(model, z_start, scheduler, *, start_t, steps, sampler=sample_difface, **kwargs):
    """A sampler over the chain of ``steps`` steps from ``start_t``, as the pipeline calls it."""
    timesteps = respaced_timesteps(start_t, steps, scheduler.config.num_train_timesteps)
    return sampler(model, z_start, scheduler, timesteps, **kwargs)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------------------------
# schedule


@pytest.mark.parametrize("start_t,steps", [(400, 50), (999, 1000), (10, 11), (250, 7), (0, 1), (300, 1)])
def test_timesteps_start_at_N_strictly_decreasing(start_t, steps):
    ts = respaced_timesteps(start_t, steps)
    assert ts[0] == start_t and ts[-1] == (0 if steps > 1 else start_t)
    assert len(ts) == steps
    assert all(a > b for a, b in zip(ts, ts[1:]))


def test_too_many_steps_are_deduplicated():
    ts = respaced_timesteps(5, 20)
    assert ts == [5, 4, 3, 2, 1, 0]


def test_clean_latent_inverts_the_forward_noising_per_sample(train_scheduler):
    z0, noise = torch.randn(SHAPE), torch.randn(SHAPE)
    t = torch.tensor([0, 99, 500, 999])
    z_t = train_scheduler.add_noise(z0, noise, t)
    torch.testing.assert_close(clean_latent(train_scheduler, z_t, noise, t), z0, atol=2e-4, rtol=1e-4)
    wrong = clean_latent(train_scheduler, z_t, torch.zeros_like(noise), t)  # no noise removed: off, most at large t
    errors = (wrong - z0).pow(2).mean(dim=(1, 2, 3))
    assert errors[0] < errors[1] < errors[2] < errors[3]


def test_respaced_scheduler_keeps_training_alphas(train_scheduler):
    ts = respaced_timesteps(400, 37)
    for kind in ("ddim", "ddpm"):
        sched = build_respaced_scheduler(as_scheduler(train_scheduler, kind), ts)
        expected = train_scheduler.alphas_cumprod[torch.tensor(ts[::-1])]
        torch.testing.assert_close(sched.alphas_cumprod, expected, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------------
# DifFace transition


@pytest.mark.parametrize("start_t", [50, 400, 999])
def test_ddim_with_oracle_returns_z0(train_scheduler, start_t):
    z0 = torch.randn(SHAPE, generator=seeded(1))
    z_start = z0 + 0.5 * torch.randn(SHAPE, generator=seeded(2))  # a wrong estimate: the oracle must fix it
    out = difface(oracle(train_scheduler, z0), z_start, as_scheduler(train_scheduler, "ddim"), start_t=start_t, steps=25,
                         eta=0.0, generator=seeded())
    torch.testing.assert_close(out, z0, rtol=0, atol=2e-5)


def test_model_calls_equal_steps_and_noise_is_added_at_first_step(train_scheduler):
    z_start = torch.randn(SHAPE, generator=seeded(3))
    calls = []
    start_t, steps = 400, 20
    difface(oracle(train_scheduler, z_start, calls), z_start, as_scheduler(train_scheduler, "ddpm"), start_t=start_t, steps=steps,
                   generator=seeded(7))
    assert len(calls) == steps
    timesteps = [t for t, _ in calls]
    assert timesteps[0] == start_t and timesteps == respaced_timesteps(start_t, steps)
    # the latent seen at the first step is q(z_N | z_start) with the first noise drawn from the generator
    noise = torch.randn(SHAPE, generator=seeded(7))
    a = train_scheduler.alphas_cumprod[start_t]
    torch.testing.assert_close(calls[0][1], a.sqrt() * z_start + (1 - a).sqrt() * noise)
    torch.testing.assert_close(noise_latent(train_scheduler, z_start, noise, start_t), calls[0][1])


def test_same_seed_same_output_other_seed_differs(train_scheduler):
    z_start = torch.randn(SHAPE, generator=seeded(3))
    prior = gaussian_prior(train_scheduler)
    runs = [difface(prior, z_start, as_scheduler(train_scheduler, kind), start_t=300, steps=10, eta=eta,
                           generator=seeded(seed))
            for kind, eta in (("ddpm", 0.0), ("ddim", 0.7)) for seed in (0, 0, 1)]
    for a, b, c in (runs[:3], runs[3:]):
        assert torch.equal(a, b)
        assert not torch.allclose(a, c)


def test_larger_start_moves_further_from_the_estimate(train_scheduler):
    """The prior N(0, 0.5^2) pulls an off-distribution estimate (all 2.0) in: more with larger N."""
    z_start = torch.full((16, 4, 8, 8), 2.0)
    prior = gaussian_prior(train_scheduler)
    distances = []
    for start_t in (25, 100, 200, 400):
        out = difface(prior, z_start, as_scheduler(train_scheduler, "ddpm"), start_t=start_t, steps=20, generator=seeded(5))
        distances.append((out - z_start).pow(2).mean().sqrt().item())
    assert all(b > a + 0.05 for a, b in zip(distances, distances[1:])), distances


def test_pure_noise_start_ignores_the_estimate(train_scheduler):
    prior = gaussian_prior(train_scheduler)
    a = difface(prior, torch.zeros(SHAPE), as_scheduler(train_scheduler, "ddim"), start_t=999, steps=10, generator=seeded(), sampler=sample_prior)
    b = difface(prior, torch.full(SHAPE, 5.0), as_scheduler(train_scheduler, "ddim"), start_t=999, steps=10, generator=seeded(), sampler=sample_prior)
    assert torch.equal(a, b)
    assert 0.3 < a.std().item() < 0.7  # a sample of the prior N(0, 0.5^2)


def test_invalid_arguments(train_scheduler):
    prior = gaussian_prior(train_scheduler)
    with pytest.raises(ValueError, match="eta"):
        difface(prior, torch.zeros(SHAPE), as_scheduler(train_scheduler, "ddpm"), start_t=10, steps=5, eta=0.5)
    with pytest.raises(ValueError, match="start_t"):
        difface(prior, torch.zeros(SHAPE), train_scheduler, start_t=1000, steps=5)
    with pytest.raises(ValueError, match="PNDMScheduler is not supported"):
        difface(prior, torch.zeros(SHAPE), PNDMScheduler.from_config(train_scheduler.config), start_t=10,
                       steps=5)
    karras = DPMSolverMultistepScheduler.from_config(train_scheduler.config, use_karras_sigmas=True)
    with pytest.raises(ValueError, match="use_karras_sigmas"):
        difface(prior, torch.zeros(SHAPE), karras, start_t=400, steps=10)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_every_scheduler_returns_z0_with_the_oracle(train_scheduler, name):
    z0 = torch.randn(SHAPE, generator=seeded(1))
    z_start = z0 + 0.5 * torch.randn(SHAPE, generator=seeded(2))
    out = difface(oracle(train_scheduler, z0), z_start, as_scheduler(train_scheduler, name), start_t=400,
                         steps=12, generator=seeded())
    torch.testing.assert_close(out, z0, rtol=0, atol=1e-4)


def test_deterministic_schedulers_solve_the_same_flow(train_scheduler):
    """DDIM (eta 0), DPM-Solver++ and Euler all integrate the probability-flow ODE of the prior: from the
    same z_N they land close together, far closer than the distance they travel."""
    z_start = torch.full(SHAPE, 2.0)
    prior = gaussian_prior(train_scheduler)
    outs = {name: difface(prior, z_start, as_scheduler(train_scheduler, name), start_t=400, steps=60,
                                 generator=seeded(3)) for name in ("ddim", "dpm++", "euler")}
    travelled = (outs["ddim"] - z_start).abs().mean()
    for name in ("dpm++", "euler"):
        assert (outs[name] - outs["ddim"]).abs().mean() < 0.02 * travelled, name


def test_callback_sees_every_step_and_may_replace_the_latents(train_scheduler):
    z0 = torch.randn(SHAPE, generator=seeded(1))
    seen = []

    def callback(info):
        seen.append((info["i"], info["t"]))
        return torch.zeros_like(info["x"]) if info["i"] == 0 else None

    sampler = as_scheduler(train_scheduler, "euler")
    replaced = difface(gaussian_prior(train_scheduler), z0, sampler, start_t=300, steps=6, callback=callback,
                              generator=seeded())
    assert seen == list(enumerate(respaced_timesteps(300, 6)))
    untouched = difface(gaussian_prior(train_scheduler), z0, sampler, start_t=300, steps=6, generator=seeded())
    assert not torch.allclose(replaced, untouched)


@pytest.mark.parametrize("name", ["ddim", "euler"])
def test_callback_receives_the_x0_estimate(train_scheduler, name):
    """With the oracle the model's x0 estimate is the clean latent at every step, whatever the scheduler."""
    z0 = torch.randn(SHAPE, generator=seeded(1))
    denoised = []
    difface(oracle(train_scheduler, z0), z0 + 1.0, as_scheduler(train_scheduler, name), start_t=300, steps=5,
            callback=lambda info: denoised.append(info["denoised"]), generator=seeded())
    assert len(denoised) == 5
    for estimate in denoised:
        torch.testing.assert_close(estimate, z0, rtol=0, atol=1e-4)


def test_samplers_are_registered_by_name_once():
    assert SAMPLERS["difface"] is sample_difface and SAMPLERS["prior"] is sample_prior
    with pytest.raises(ValueError, match="registered twice"):
        register_sampler("difface")(sample_prior)


def test_the_chain_is_checked_in_one_place():
    with pytest.raises(ValueError, match="steps 0: must be at least 1"):
        respaced_timesteps(10, 0)
    with pytest.raises(ValueError, match="start_t -1: must be >= 0"):
        respaced_timesteps(-1, 5)
    with pytest.raises(ValueError, match=r"start_t 1000: must be in \[0, 999\]"):
        respaced_timesteps(1000, 5, 1000)


# --------------------------------------------------------------------------------------------------
# conditioning


class EchoUNet(nn.Module):
    """Returns the condition channels as eps (so eps_cond = c and eps_uncond = 0) and counts calls."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.scale = nn.Parameter(torch.ones(()))
        self.inputs = []

    def forward(self, x, t):
        self.inputs.append(x)
        return type("Out", (), {"sample": x[:, self.channels:] * self.scale})()


def test_condition_is_concatenated_and_cfg_mixes_branches():
    c = torch.randn(SHAPE)
    z = torch.randn(SHAPE)
    unet = EchoUNet(SHAPE[1])
    torch.testing.assert_close(unet_eps_model(unet, c)(z, 10), c)
    assert len(unet.inputs) == 1 and torch.equal(unet.inputs[0], torch.cat([z, c], 1))
    unet.inputs.clear()
    torch.testing.assert_close(unet_eps_model(unet, c, cfg_scale=3.0)(z, 10), 3.0 * c)  # 0 + 3 (c - 0)
    assert len(unet.inputs) == 1  # both branches in one batched call
    with pytest.raises(ValueError, match="condition"):
        unet_eps_model(unet, None, cfg_scale=2.0)


# --------------------------------------------------------------------------------------------------
# identity guidance


class TinyDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(11)
        self.conv = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, z):
        return torch.tanh(self.conv(F.interpolate(z, scale_factor=2, mode="bilinear", align_corners=False)))


class TinyPhi(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(12)
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.SiLU(), nn.Conv2d(16, 32, 3, 2, 1), nn.SiLU())
        self.head = nn.Linear(32 * 4 * 4, 16)

    def forward(self, x):
        return F.normalize(self.head(self.features(x).flatten(1)), dim=-1)


@pytest.fixture(scope="module")
def identity_parts():
    decoder, phi = TinyDecoder().eval(), TinyPhi().eval()
    for p in list(decoder.parameters()) + list(phi.parameters()):
        p.requires_grad_(False)
    with torch.no_grad():
        target = phi(decoder(torch.randn(SHAPE, generator=seeded(21))))
    return decoder, phi, target


def make_guidance(identity_parts, scale=0.05, mask=None, **kwargs):
    decoder, phi, target = identity_parts
    mask = torch.ones(1, *SHAPE[1:]) if mask is None else mask
    return IdentityGuidance(decode=decoder, embed=phi, target=target, mask=mask, scale=scale, **kwargs)


def run(train_scheduler, guidance=None, sampler="ddpm", seed=0):
    z_start = torch.randn(SHAPE, generator=seeded(4))
    return difface(gaussian_prior(train_scheduler), z_start, as_scheduler(train_scheduler, sampler), start_t=400, steps=15,
                          generator=seeded(seed), guidance=guidance)


def exploding(*_args):
    raise AssertionError("the identity gradient must not be computed")


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_zero_scale_or_zero_mask_is_bit_identical_to_unguided(train_scheduler, identity_parts, sampler):
    unguided = run(train_scheduler, sampler=sampler)
    _, _, target = identity_parts
    inactive = [
        IdentityGuidance(decode=exploding, embed=exploding, target=target, mask=torch.ones(1, 4, 8, 8), scale=0.0),
        IdentityGuidance(decode=exploding, embed=exploding, target=target, mask=torch.zeros(1, 4, 8, 8), scale=0.3),
        IdentityGuidance(decode=exploding, embed=exploding, target=target, mask=torch.ones(1, 4, 8, 8), scale=0.3,
                         range=(0.5, 0.5)),
    ]
    for guidance in inactive:
        assert torch.equal(run(train_scheduler, guidance, sampler=sampler), unguided)


def cosine(identity_parts, z):
    decoder, phi, target = identity_parts
    return F.cosine_similarity(phi(decoder(z)), target, dim=-1)


def test_guidance_moves_identity_towards_target(train_scheduler, identity_parts):
    unguided = run(train_scheduler)
    guided = run(train_scheduler, make_guidance(identity_parts, scale=0.05))
    before, after = cosine(identity_parts, unguided), cosine(identity_parts, guided)
    assert (after > before).all(), (before, after)
    assert (after - before).mean() > 0.1, (before, after)


def test_guidance_acts_only_through_the_mask(train_scheduler, identity_parts):
    """The Gaussian prior's eps is elementwise, so latent positions where M = 0 stay untouched."""
    mask = torch.zeros(1, *SHAPE[1:])
    mask[..., :, 4:] = 1.0
    unguided = run(train_scheduler)
    guided = run(train_scheduler, make_guidance(identity_parts, scale=0.05, mask=mask))
    assert torch.equal(guided[..., :4], unguided[..., :4])
    assert (guided[..., 4:] - unguided[..., 4:]).abs().mean() > 0.05


def test_guidance_every_and_range_select_steps(train_scheduler, identity_parts):
    calls = []
    decoder, phi, target = identity_parts

    def counting_decoder(z):
        calls.append(z.shape)
        return decoder(z)

    guidance = IdentityGuidance(decode=counting_decoder, embed=phi, target=target, mask=torch.ones(1, 4, 8, 8),
                                scale=0.05, every=2, range=(0.0, 0.6))
    run(train_scheduler, guidance)  # 15 steps: fractions i/15 < 0.6 -> i in 0..8, even -> 0, 2, 4, 6, 8
    assert len(calls) == 5


def test_identity_gradient_is_unit_rms_and_descends(identity_parts, train_scheduler):
    guidance = make_guidance(identity_parts)
    z = torch.randn(SHAPE, generator=seeded(8))
    eps = torch.zeros(SHAPE)
    a = train_scheduler.alphas_cumprod[0].item()
    grad = identity_gradient(guidance, z, eps, a)
    torch.testing.assert_close(grad.pow(2).mean(dim=(1, 2, 3)), torch.ones(4))
    z0 = z / a ** 0.5
    assert (cosine(identity_parts, (z - 0.01 * grad) / a ** 0.5) > cosine(identity_parts, z0)).all()


def test_invalid_guidance_options(identity_parts):
    with pytest.raises(ValueError, match="guidance_every"):
        make_guidance(identity_parts, every=0)
    with pytest.raises(ValueError, match="guidance_range"):
        make_guidance(identity_parts, range=(0.7, 0.2))
    with pytest.raises(ValueError, match="schedule"):
        make_guidance(identity_parts, schedule="cosine")


def test_too_few_distinct_timesteps_are_told_once_and_not_for_the_backbone_alone(caplog):
    """More steps than timesteps in [0, start_t]: one warning per setting, however many faces ask; start_t 0
    (``--fidelity 1``, the backbone's estimate) is a mode asked for, not a problem."""
    schedulers._warn_few_timesteps.cache_clear()  # another test may have asked for the same setting
    with caplog.at_level(logging.WARNING, logger="diffrestore.sampling.schedulers"):
        for _ in range(3):
            assert respaced_timesteps(3, 10) == [3, 2, 1, 0]
            assert respaced_timesteps(0, 10) == [0]
    assert [r.getMessage() for r in caplog.records] == [
        "10 steps requested over [0, 3]: only 4 distinct timesteps exist, using those"]
