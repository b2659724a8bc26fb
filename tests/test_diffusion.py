"""companion.diffusion's denoiser, loss and samplers: the steps against diffusers' schedulers."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, DDPMScheduler
from diffusers.models.embeddings import get_timestep_embedding

from companion import diffusion


def _batch(seed: int, shape=(4, 1, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    # x_t, a prediction of the noise large enough for x0_hat to leave [-1, 1] (clipping matters)
    return torch.randn(shape, generator=g), 1.5 * torch.randn(shape, generator=g)


@pytest.mark.parametrize("schedule", ["linear", "squaredcos_cap_v2"])
@pytest.mark.parametrize("variance", ["small", "large"])
@pytest.mark.parametrize("clip", [True, False])
def test_ddpm_step_equals_diffusers(schedule, variance, clip):
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule=schedule, clip_sample=clip,
                              variance_type=f"fixed_{variance}")
    for t in (999, 500, 10, 1, 0):
        x_t, eps = _batch(t)
        theirs = scheduler.step(eps, t, x_t, generator=torch.Generator().manual_seed(7)).prev_sample
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(7))
        ours = diffusion.ddpm_step(eps, x_t, t, scheduler.betas, noise, variance=variance, clip=clip)
        torch.testing.assert_close(ours, theirs)
        if t == 0:  # the last step adds no noise: its output is the posterior mean
            torch.testing.assert_close(diffusion.ddpm_step(eps, x_t, 0, scheduler.betas, clip=clip), theirs)


def test_respaced_ddpm_step_equals_diffusers_with_fewer_steps():
    scheduler = DDPMScheduler(num_train_timesteps=1000, clip_sample=False)
    scheduler.set_timesteps(50)
    schedule = diffusion.sampling_timesteps(1000, 50)
    assert schedule == scheduler.timesteps.tolist()
    for i in (0, 20, 49):
        t, t_prev = schedule[i], (schedule[i + 1] if i < 49 else -1)
        x_t, eps = _batch(i)
        theirs = scheduler.step(eps, t, x_t, generator=torch.Generator().manual_seed(3)).prev_sample
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(3))
        ours = diffusion.ddpm_step(eps, x_t, t, scheduler.betas, noise, t_prev=t_prev, clip=False)
        torch.testing.assert_close(ours, theirs)


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("clip", [True, False])
def test_ddim_step_equals_diffusers(eta, clip):
    scheduler = DDIMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=clip)
    scheduler.set_timesteps(20)
    schedule = diffusion.sampling_timesteps(1000, 20)
    assert schedule == scheduler.timesteps.tolist()
    for i in (0, 7, 19):
        t, t_prev = schedule[i], (schedule[i + 1] if i < 19 else -1)
        x_t, eps = _batch(i)
        noise = torch.randn(x_t.shape, generator=torch.Generator().manual_seed(5))
        theirs = scheduler.step(eps, t, x_t, eta=eta, variance_noise=noise if eta > 0 else None).prev_sample
        ours = diffusion.ddim_step(eps, x_t, t, t_prev, scheduler.betas, eta=eta, noise=noise, clip=clip)
        torch.testing.assert_close(ours, theirs)


def test_ddpm_mean_is_algorithm_2_and_ddim_with_the_true_noise_recovers_x0():
    betas = diffusion.linear_beta_schedule(100).double()
    abar = diffusion.alphas_cumprod(betas)
    x_t, eps = _batch(0)
    x_t, eps = x_t.double(), eps.double()
    t = 40
    # Algorithm 2 of Ho et al.: (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t), with no clipping
    mean = (x_t - betas[t] / (1 - abar[t]).sqrt() * eps) / (1 - betas[t]).sqrt()
    torch.testing.assert_close(diffusion.ddpm_step(eps, x_t, t, betas, torch.zeros_like(x_t), clip=False), mean)
    # noise an image, then one DDIM jump to t_prev = -1 with the true noise returns the image exactly
    x0 = torch.rand(4, 1, 8, 8, dtype=torch.float64) * 2 - 1
    x_70 = diffusion.q_sample(x0, torch.full((4,), 70), eps, betas)
    torch.testing.assert_close(diffusion.ddim_step(eps, x_70, 70, -1, betas), x0)
    # and a jump to t_prev lands on the same noisy image q_sample makes at t_prev (eta = 0)
    x_20 = diffusion.q_sample(x0, torch.full((4,), 20), eps, betas)
    torch.testing.assert_close(diffusion.ddim_step(eps, x_70, 70, 20, betas), x_20)


def test_timestep_embedding_equals_diffusers():
    t = torch.tensor([0, 1, 17, 999])
    ours = diffusion.timestep_embedding(t, 32)
    assert ours.shape == (4, 32)
    torch.testing.assert_close(ours, get_timestep_embedding(t, 32, downscale_freq_shift=0))
    with pytest.raises(ValueError, match="positive even int"):
        diffusion.timestep_embedding(t, 7)


def test_denoiser_shapes_uses_the_timestep_and_errors():
    torch.manual_seed(0)
    model = diffusion.Denoiser(in_channels=1, base_channels=16)
    x = torch.randn(3, 1, 28, 28)
    out = model(x, torch.tensor([0, 5, 999]))
    assert out.shape == x.shape
    # the same images at other timesteps give other predictions
    assert not torch.allclose(model(x, torch.tensor([1, 6, 10])), out)
    assert model(torch.randn(2, 1, 32, 32), torch.tensor([0, 1])).shape == (2, 1, 32, 32)
    with pytest.raises(ValueError, match="divisible by 4"):
        model(torch.randn(2, 1, 30, 30), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="one timestep per image"):
        model(x, torch.tensor([0, 1]))


def test_diffusion_loss_is_the_noise_mse():
    betas = diffusion.linear_beta_schedule(50)
    x0 = torch.rand(6, 1, 8, 8) * 2 - 1
    seen = {}

    def model(x_t, t):
        seen["x_t"], seen["t"] = x_t, t
        return torch.zeros_like(x_t)

    loss = diffusion.diffusion_loss(model, x0, betas, torch.Generator().manual_seed(0))
    # rebuild t and the noise from the same generator: the loss is ||noise - 0||^2 averaged
    g = torch.Generator().manual_seed(0)
    t = torch.randint(0, 50, (6,), generator=g)
    noise = torch.randn(x0.shape, generator=g)
    torch.testing.assert_close(seen["t"], t)
    torch.testing.assert_close(seen["x_t"], diffusion.q_sample(x0, t, noise, betas))
    torch.testing.assert_close(loss, (noise**2).mean())


def test_training_lowers_the_loss_and_sample_runs_the_samplers():
    torch.manual_seed(0)
    betas = diffusion.linear_beta_schedule(100)
    images = (torch.rand(64, 1, 8, 8) > 0.5).float() * 2 - 1
    model = diffusion.Denoiser(base_channels=8)
    log = diffusion.train_denoiser(model, images, betas, steps=60, batch_size=32, lr=3e-3, seed=0)
    assert len(log.loss) == 60 and log.seconds > 0
    assert sum(log.loss[-10:]) < sum(log.loss[:10])
    for method, steps in (("ddpm", None), ("ddpm", 10), ("ddim", 10)):
        x, kept = diffusion.sample(model, (3, 1, 8, 8), betas, steps=steps, method=method,
                                   generator=torch.Generator().manual_seed(1), record=(90, 0))
        assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all()
        assert set(kept) == {90, 0}
    # DDIM with eta = 0 is deterministic given x_T
    a, _ = diffusion.sample(model, (2, 1, 8, 8), betas, steps=5, method="ddim", generator=torch.Generator().manual_seed(2))
    b, _ = diffusion.sample(model, (2, 1, 8, 8), betas, steps=5, method="ddim", generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)


def test_sampling_timesteps_and_errors_are_named():
    assert diffusion.sampling_timesteps(10, 10) == list(range(9, -1, -1))
    assert diffusion.sampling_timesteps(1000, 4) == [750, 500, 250, 0]
    betas = diffusion.linear_beta_schedule(10)
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="steps must be an int in"):
        diffusion.sampling_timesteps(10, 11)
    with pytest.raises(ValueError, match=r"0 <= t < 10"):
        diffusion.ddpm_step(x, x, 10, betas, x)
    with pytest.raises(ValueError, match=r"t_prev < t"):
        diffusion.ddim_step(x, x, 3, 3, betas)
    with pytest.raises(ValueError, match="noise is needed"):
        diffusion.ddpm_step(x, x, 3, betas)
    with pytest.raises(ValueError, match="noise is needed when eta"):
        diffusion.ddim_step(x, x, 3, 1, betas, eta=0.5)
    with pytest.raises(ValueError, match="same shape"):
        diffusion.ddim_step(x, torch.zeros(2, 4), 3, 1, betas)
    with pytest.raises(ValueError, match="variance must be"):
        diffusion.ddpm_step(x, x, 3, betas, x, variance="big")
    with pytest.raises(ValueError, match="method must be"):
        diffusion.sample(diffusion.Denoiser(base_channels=8), (1, 1, 8, 8), betas, method="euler")
