"""Denoising diffusion: noise schedules and the forward (noising) process in closed form.

Ho, Jain and Abbeel, 2020, *Denoising Diffusion Probabilistic Models* (DDPM),
https://arxiv.org/abs/2006.11239: the forward process adds Gaussian noise in ``T`` small steps,
``q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I)``. With ``alpha_t = 1 - beta_t`` and
``abar_t = alpha_0 alpha_1 ... alpha_t``, any step has a closed form,

    x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps,   eps ~ N(0, I),

so training can jump straight to a random ``t``. The schedule ``beta_t`` decides how fast the
signal fades: linear (DDPM) or cosine (Nichol and Dhariwal, 2021, *Improved DDPM*,
https://arxiv.org/abs/2102.09672), which keeps more signal in the early steps.

The functions match diffusers' ``DDPMScheduler`` (the test oracle): ``linear_beta_schedule`` its
``beta_schedule="linear"``, ``cosine_beta_schedule`` its ``"squaredcos_cap_v2"`` and ``q_sample``
its ``add_noise``. Timesteps count from 0: ``t = 0`` is the first noising step.

Introduced in chapter 24, *Diffusion models*.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from companion._checks import check_tensor


def _check_timesteps(timesteps: object) -> int:
    if not isinstance(timesteps, int) or isinstance(timesteps, bool) or timesteps < 1:
        raise ValueError(f"timesteps must be a positive int, got {timesteps!r}")
    return timesteps


def linear_beta_schedule(timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """DDPM's schedule: ``beta_t`` evenly spaced from ``beta_start`` to ``beta_end``.

    Returns:
        Tensor[timesteps] (float32).
    """
    _check_timesteps(timesteps)
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"need 0 < beta_start <= beta_end < 1, got {beta_start} and {beta_end}")
    return torch.linspace(beta_start, beta_end, timesteps, dtype=torch.float32)


def cosine_beta_schedule(timesteps: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol and Dhariwal's cosine schedule: ``abar(t) = cos((t/T + s) / (1 + s) * pi/2)**2``.

    Each ``beta_t = 1 - abar((t+1)/T) / abar(t/T)``, capped at ``max_beta`` so that the last steps
    do not destroy the signal in one go (``beta = 1`` would make ``x_T`` independent of ``x_0``
    abruptly and the reverse step singular).

    Returns:
        Tensor[timesteps] (float32).
    """
    _check_timesteps(timesteps)
    if s < 0 or not 0 < max_beta < 1:
        raise ValueError(f"need s >= 0 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")

    def alpha_bar(fraction: float) -> float:
        return math.cos((fraction + s) / (1 + s) * math.pi / 2) ** 2

    betas = [min(1 - alpha_bar((i + 1) / timesteps) / alpha_bar(i / timesteps), max_beta)
             for i in range(timesteps)]
    return torch.tensor(betas, dtype=torch.float32)


def alphas_cumprod(betas: Tensor) -> Tensor:
    """``abar_t = prod_{s <= t} (1 - beta_s)``: the fraction of the signal's variance left at step ``t``."""
    check_tensor(betas, "betas", ndim=1, shape_hint="(T,)", floating=True)
    return torch.cumprod(1.0 - betas, dim=0)


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, betas: Tensor) -> Tensor:
    """Noise clean samples to step ``t`` in one go: ``sqrt(abar_t) x0 + sqrt(1 - abar_t) noise``.

    Args:
        x0 (Tensor[N, ...]): clean samples.
        t (Tensor[N]): one integer timestep per sample, in ``[0, T)``.
        noise (Tensor[N, ...]): standard normal noise of ``x0``'s shape.
        betas (Tensor[T]): the schedule.

    Returns:
        Tensor[N, ...]: the noisy samples ``x_t``; equal to diffusers' ``DDPMScheduler.add_noise``.
    """
    check_tensor(x0, "x0", floating=True)
    check_tensor(noise, "noise", floating=True)
    check_tensor(t, "t", ndim=1, shape_hint="(N,)")
    if noise.shape != x0.shape:
        raise ValueError(f"noise {tuple(noise.shape)} must have x0's shape {tuple(x0.shape)}")
    if t.is_floating_point() or len(t) != len(x0):
        raise ValueError(f"t must hold one integer timestep per sample ({len(x0)}), got {t.dtype} of shape {tuple(t.shape)}")
    abar = alphas_cumprod(betas).to(device=x0.device, dtype=x0.dtype)
    if len(t) and (int(t.min()) < 0 or int(t.max()) >= len(betas)):
        raise ValueError(f"t must be in [0, {len(betas)}): timesteps count from 0, got values from "
                         f"{int(t.min())} to {int(t.max())}")
    shape = (-1,) + (1,) * (x0.dim() - 1)  # (N, 1, 1, ...) to broadcast over each sample
    a = abar[t.to(x0.device)].view(shape)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise
