"""companion.diffusion against diffusers' DDPMScheduler; companion.style's Gram matrix by hand."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from companion import diffusion, style


@pytest.mark.parametrize("timesteps", [1, 10, 1000])
def test_schedules_equal_diffusers(timesteps):
    linear = DDPMScheduler(num_train_timesteps=timesteps, beta_schedule="linear")
    torch.testing.assert_close(diffusion.linear_beta_schedule(timesteps), linear.betas)
    custom = DDPMScheduler(num_train_timesteps=timesteps, beta_start=1e-3, beta_end=0.05, beta_schedule="linear")
    torch.testing.assert_close(diffusion.linear_beta_schedule(timesteps, 1e-3, 0.05), custom.betas)
    cosine = DDPMScheduler(num_train_timesteps=timesteps, beta_schedule="squaredcos_cap_v2")
    torch.testing.assert_close(diffusion.cosine_beta_schedule(timesteps), cosine.betas)
    torch.testing.assert_close(diffusion.alphas_cumprod(cosine.betas), cosine.alphas_cumprod)


@pytest.mark.parametrize("schedule", ["linear", "squaredcos_cap_v2"])
def test_q_sample_equals_add_noise(schedule):
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule=schedule)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(6, 1, 8, 8, generator=g)
    noise = torch.randn(6, 1, 8, 8, generator=g)
    t = torch.tensor([0, 1, 10, 500, 998, 999])
    ours = diffusion.q_sample(x0, t, noise, scheduler.betas)
    torch.testing.assert_close(ours, scheduler.add_noise(x0, noise, t))


def test_closed_form_equals_noising_step_by_step():
    betas = diffusion.linear_beta_schedule(50)
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(20000, generator=g, dtype=torch.float64)[:, None]
    x = x0.clone()
    for beta in betas.double()[:30]:  # x_t = sqrt(1 - beta) x_{t-1} + sqrt(beta) eps
        x = (1 - beta).sqrt() * x + beta.sqrt() * torch.randn(x.shape, generator=g, dtype=torch.float64)
    abar = float(diffusion.alphas_cumprod(betas.double())[29])
    # Same distribution given x0: mean sqrt(abar) x0, variance 1 - abar.
    residual = x - abar**0.5 * x0
    assert abs(float(residual.mean())) < 0.02
    assert float(residual.var()) == pytest.approx(1 - abar, rel=0.03)


def test_bad_timesteps_are_named():
    betas = diffusion.linear_beta_schedule(10)
    x0 = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"t must be in \[0, 10\)"):
        diffusion.q_sample(x0, torch.tensor([0, 10]), x0, betas)
    with pytest.raises(ValueError, match=r"t must be in \[0, 10\)"):
        diffusion.q_sample(x0, torch.tensor([-1, 3]), x0, betas)
    with pytest.raises(ValueError, match="one integer timestep per sample"):
        diffusion.q_sample(x0, torch.tensor([0.5, 1.0]), x0, betas)
    with pytest.raises(ValueError, match="timesteps must be a positive int"):
        diffusion.cosine_beta_schedule(0)
    with pytest.raises(ValueError, match="beta_start <= beta_end"):
        diffusion.linear_beta_schedule(10, 0.1, 0.01)


def test_gram_matrix_by_hand_and_its_gradient():
    g = torch.Generator().manual_seed(0)
    features = torch.randn(2, 3, 4, 5, generator=g, dtype=torch.float64, requires_grad=True)
    expected = torch.stack([torch.stack([torch.stack([(f[i] * f[j]).sum() for j in range(3)]) for i in range(3)])
                            for f in features]) / (3 * 4 * 5)
    gram = style.gram_matrix(features)
    torch.testing.assert_close(gram, expected)
    torch.testing.assert_close(gram, torch.einsum("nchw,ndhw->ncd", features, features) / 60)
    assert torch.allclose(gram, gram.transpose(1, 2))  # symmetric
    torch.autograd.gradcheck(style.gram_matrix, (features,))
    big = torch.randn(1, 3, 40, 50, generator=g, dtype=torch.float64)
    # Normalised: a layer with 100 times the positions does not get a 100 times larger Gram matrix.
    assert 0.1 < float(style.gram_matrix(big).diagonal(dim1=1, dim2=2).mean()) < 10
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        style.gram_matrix(torch.randn(3, 4, 5))
