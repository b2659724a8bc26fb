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

The reverse process: a denoiser ``eps_theta(x_t, t)`` (:class:`Denoiser`, a small U-Net told the
timestep through a sinusoidal :func:`timestep_embedding`) is trained to predict the noise of
``x_t`` with Ho et al.'s simplified loss (:func:`diffusion_loss`, :func:`train_denoiser`), and
samples are drawn from pure noise step by step: ancestral sampling (:func:`ddpm_step`, Ho et al.'s
Algorithm 2) or DDIM (:func:`ddim_step`; Song, Meng and Ermon, 2021, *Denoising Diffusion Implicit
Models*, https://arxiv.org/abs/2010.02502), which skips timesteps and needs 20-50 model calls
instead of ``T``. The steps equal diffusers' ``DDPMScheduler.step`` and ``DDIMScheduler.step``
(tested); :func:`sample` runs either sampler.

Introduced in chapter 24, *Diffusion models*.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor


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


# --- the denoiser: a small U-Net told the timestep --------------------------------------------------

def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal features of the timesteps, as the positions of a Transformer (Vaswani et al., 2017).

    ``[sin(t w_0), ..., sin(t w_{h-1}), cos(t w_0), ..., cos(t w_{h-1})]`` with ``h = dim / 2`` and
    frequencies ``w_i = max_period**(-i / h)``, from one turn per step down to one per
    ``2 pi max_period`` steps. Ho et al. (2020) feed this to every block of their denoiser. Equal
    to diffusers' ``get_timestep_embedding(t, dim, downscale_freq_shift=0)``.

    Args:
        t (Tensor[N]): timesteps (integers or floats).
        dim: an even number of features.

    Returns:
        Tensor[N, dim] (float32).
    """
    check_tensor(t, "t", ndim=1, shape_hint="(N,)")
    if not isinstance(dim, int) or isinstance(dim, bool) or dim < 2 or dim % 2:
        raise ValueError(f"dim must be a positive even int, got {dim!r}")
    half = dim // 2
    exponent = torch.arange(half, dtype=torch.float32, device=t.device) / half  # (h,)
    freqs = torch.exp(-math.log(max_period) * exponent)  # (h,)
    angles = t.float()[:, None] * freqs[None]  # (N, h)
    return torch.cat([angles.sin(), angles.cos()], dim=1)  # (N, dim)


class TimeBlock(nn.Module):
    """Two 3x3 convolutions with group norm and SiLU, the time embedding added in between, and a residual.

    The residual block of Ho et al.'s denoiser (a Wide ResNet block with group norm): the timestep
    enters as a per-channel shift, ``Linear(time_dim, out)`` of the embedding.
    """

    def __init__(self, in_channels: int, out_channels: int, time_dim: int, groups: int = 8) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(math.gcd(groups, in_channels), in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(time_dim, out_channels)
        self.norm2 = nn.GroupNorm(math.gcd(groups, out_channels), out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.skip = (nn.Identity() if in_channels == out_channels
                     else nn.Conv2d(in_channels, out_channels, 1))

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))  # (N, out, H, W)
        h = h + self.time(emb)[:, :, None, None]  # the timestep shifts each channel
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class Denoiser(nn.Module):
    """``eps_theta(x_t, t)``: a small U-Net that predicts the noise in ``x_t``, told the timestep ``t``.

    The shape of chapter 17's U-Net (an encoder that halves the resolution twice, a decoder that
    doubles it back, skip connections concatenated), with the changes of Ho et al. (2020): each
    level is a :class:`TimeBlock` that receives the sinusoidal embedding of ``t`` passed through a
    two-layer MLP, group norm instead of batch norm, and an output with the input's channels (the
    noise), not class scores. Ho et al.'s model adds more levels, two blocks per level, attention
    at 16x16 and dropout; this one is sized for a CPU.

    Args:
        in_channels: channels of the images (1 for Fashion-MNIST).
        base_channels: channels of the first level (the second and the middle have twice as many).

    Shapes: ``x`` (N, C, H, W) with H and W divisible by 4, ``t`` (N,) -> (N, C, H, W).
    """

    def __init__(self, in_channels: int = 1, base_channels: int = 32) -> None:
        super().__init__()
        for value, name in ((in_channels, "in_channels"), (base_channels, "base_channels")):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        c, time_dim = base_channels, 4 * base_channels
        self.in_channels, self.base_channels = in_channels, base_channels
        self.time_mlp = nn.Sequential(nn.Linear(c, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(in_channels, c, 3, padding=1)
        self.down1 = TimeBlock(c, c, time_dim)  # H
        self.pool1 = nn.Conv2d(c, c, 3, stride=2, padding=1)  # H/2
        self.down2 = TimeBlock(c, 2 * c, time_dim)
        self.pool2 = nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1)  # H/4
        self.middle = TimeBlock(2 * c, 2 * c, time_dim)
        self.up2 = TimeBlock(4 * c, 2 * c, time_dim)  # H/2, after the skip from down2
        self.up1 = TimeBlock(3 * c, c, time_dim)  # H, after the skip from down1
        self.head = nn.Sequential(nn.GroupNorm(math.gcd(8, c), c), nn.SiLU(), nn.Conv2d(c, in_channels, 3, padding=1))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        check_tensor(x, "x", ndim=4, shape_hint="(N, C, H, W)", floating=True)
        check_tensor(t, "t", ndim=1, shape_hint="(N,)")
        if x.shape[1] != self.in_channels or x.shape[2] % 4 or x.shape[3] % 4 or len(t) != len(x):
            raise ValueError(f"need x of shape (N, {self.in_channels}, H, W) with H and W divisible by 4 and "
                             f"one timestep per image, got x {tuple(x.shape)} and t {tuple(t.shape)}")
        emb = self.time_mlp(timestep_embedding(t, self.base_channels))  # (N, 4c)
        h1 = self.down1(self.stem(x), emb)  # (N, c, H, W)
        h2 = self.down2(self.pool1(h1), emb)  # (N, 2c, H/2, W/2)
        h = self.middle(self.pool2(h2), emb)  # (N, 2c, H/4, W/4)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (N, 2c, H/2, W/2)
        h = self.up2(torch.cat([h, h2], dim=1), emb)  # (N, 2c, H/2, W/2)
        h = F.interpolate(h, scale_factor=2.0, mode="nearest")  # (N, 2c, H, W)
        h = self.up1(torch.cat([h, h1], dim=1), emb)  # (N, c, H, W)
        return self.head(h)  # (N, C, H, W): the predicted noise


# --- training: the simplified loss --------------------------------------------------------------------

def diffusion_loss(model: nn.Module, x0: Tensor, betas: Tensor,
                   generator: torch.Generator | None = None) -> Tensor:
    """Ho et al.'s simplified objective, ``E_{t, x0, eps} ||eps - eps_theta(x_t, t)||^2`` (their eq. 14).

    Draws one timestep per image uniformly from ``[0, T)`` and standard normal noise, noises the
    images with :func:`q_sample`, and returns the mean squared error between the noise and the
    model's prediction of it (a scalar, averaged over images and pixels).

    Args:
        model: called as ``model(x_t, t)``; returns a tensor of ``x0``'s shape.
        x0 (Tensor[N, C, H, W]): clean images, scaled to [-1, 1].
        betas (Tensor[T]): the schedule.
    """
    check_tensor(x0, "x0", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_tensor(betas, "betas", ndim=1, shape_hint="(T,)", floating=True)
    device = generator.device if generator is not None else x0.device
    t = torch.randint(0, len(betas), (len(x0),), generator=generator, device=device).to(x0.device)  # (N,)
    noise = torch.randn(x0.shape, generator=generator, device=device, dtype=x0.dtype).to(x0.device)
    x_t = q_sample(x0, t, noise, betas)
    return F.mse_loss(model(x_t, t), noise)


@dataclass
class TrainLog:
    """What :func:`train_denoiser` records: the loss of every step and the wall-clock time."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_denoiser(model: nn.Module, images: Tensor, betas: Tensor, *, steps: int, batch_size: int = 128,
                   lr: float = 2e-3, seed: int = 0) -> TrainLog:
    """Train a denoiser with :func:`diffusion_loss` and Adam (Ho et al.'s Algorithm 1).

    Each step draws a minibatch of ``images`` at random (with a generator seeded by ``seed``, as
    are the timesteps and the noise), on the model's device.

    Args:
        images (Tensor[N, C, H, W]): training images scaled to [-1, 1].
        steps, batch_size: the number of Adam steps and images per step.
    """
    check_tensor(images, "images", ndim=4, shape_hint="(N, C, H, W)", floating=True)
    check_positive_int(steps, "steps")
    check_positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    betas = betas.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    log, start = TrainLog(), time.perf_counter()
    model.train()
    for _ in range(steps):
        index = torch.randint(0, len(images), (batch_size,), generator=order)
        loss = diffusion_loss(model, images[index].to(device), betas, generator)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        log.loss.append(float(loss.detach()))
    model.eval()
    log.seconds = time.perf_counter() - start
    return log


# --- sampling: ancestral (DDPM) and DDIM steps ------------------------------------------------------

def _abar_pair(betas: Tensor, t: int, t_prev: int) -> tuple[Tensor, Tensor]:
    """``abar_t`` and ``abar_{t_prev}`` (1 for ``t_prev = -1``, the clean image), after checking both."""
    check_tensor(betas, "betas", ndim=1, shape_hint="(T,)", floating=True)
    for value, name in ((t, "t"), (t_prev, "t_prev")):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be an int timestep, got {value!r}")
    if not 0 <= t < len(betas) or not -1 <= t_prev < t:
        raise ValueError(f"need 0 <= t < {len(betas)} and -1 <= t_prev < t (timesteps count from 0; t_prev = -1 "
                         f"is the clean image), got t={t}, t_prev={t_prev}")
    abar = alphas_cumprod(betas)
    return abar[t], (abar[t_prev] if t_prev >= 0 else torch.ones((), dtype=betas.dtype, device=betas.device))


def _check_step(eps: Tensor, x_t: Tensor, noise: Tensor | None) -> None:
    check_tensor(eps, "eps", floating=True)
    check_tensor(x_t, "x_t", floating=True)
    if eps.shape != x_t.shape or (noise is not None and noise.shape != x_t.shape):
        raise ValueError(f"eps {tuple(eps.shape)}, x_t {tuple(x_t.shape)} and noise "
                         f"{None if noise is None else tuple(noise.shape)} must have the same shape")


def predict_x0(eps: Tensor, x_t: Tensor, abar_t: Tensor | float) -> Tensor:
    """The clean image implied by a noise prediction: ``(x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t)``.

    :func:`q_sample` solved for ``x0``.
    """
    abar_t = torch.as_tensor(abar_t, dtype=x_t.dtype, device=x_t.device)
    return (x_t - (1 - abar_t).sqrt() * eps) / abar_t.sqrt()


def ddpm_step(eps: Tensor, x_t: Tensor, t: int, betas: Tensor, noise: Tensor | None = None, *,
              t_prev: int | None = None, variance: str = "small", clip: bool = True) -> Tensor:
    """One ancestral sampling step, ``x_t -> x_{t_prev}`` (Ho et al. 2020, Algorithm 2).

    Samples the Gaussian posterior ``q(x_{t_prev} | x_t, x0)`` with ``x0`` replaced by
    :func:`predict_x0` (clipped to [-1, 1] when ``clip``), which is Algorithm 2's mean
    ``(x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t)`` when nothing is clipped. Its
    variance is ``beta_tilde = (1 - abar_{t_prev}) / (1 - abar_t) beta_t`` (``"small"``) or
    ``beta_t`` (``"large"``); Ho et al. found both to work. No noise is added in the last step
    (``t_prev = -1``): its output is the sample. A ``t_prev`` below ``t - 1`` skips steps with the
    respaced ``beta_t = 1 - abar_t / abar_{t_prev}`` of Nichol and Dhariwal (2021), section 4.
    Equal to diffusers' ``DDPMScheduler.step`` (``variance_type="fixed_small"`` or
    ``"fixed_large"``, ``clip_sample=clip``) given the same noise.

    Args:
        eps (Tensor[N, ...]): the model's prediction of the noise in ``x_t``.
        x_t (Tensor[N, ...]): the current samples.
        t: the current timestep, in ``[0, T)``.
        betas (Tensor[T]): the schedule the model was trained with.
        noise (Tensor[N, ...]): standard normal noise; needed unless ``t_prev = -1``.
        t_prev: the next timestep, default ``t - 1``.

    Returns:
        Tensor[N, ...]: ``x_{t_prev}``.
    """
    t_prev = t - 1 if t_prev is None and isinstance(t, int) else t_prev
    abar_t, abar_prev = _abar_pair(betas, t, t_prev)
    _check_step(eps, x_t, noise)
    if variance not in ("small", "large"):
        raise ValueError(f"variance must be 'small' or 'large', got {variance!r}")
    abar_t, abar_prev = abar_t.to(x_t), abar_prev.to(x_t)
    beta_t = 1 - abar_t / abar_prev  # beta_t itself when t_prev = t - 1
    x0 = predict_x0(eps, x_t, abar_t)
    if clip:
        x0 = x0.clamp(-1.0, 1.0)
    # the posterior mean, Ho et al. eq. 7
    mean = (abar_prev.sqrt() * beta_t / (1 - abar_t)) * x0 + ((1 - beta_t).sqrt() * (1 - abar_prev) / (1 - abar_t)) * x_t
    if t_prev < 0:
        return mean
    if noise is None:
        raise ValueError(f"noise is needed for the step from t={t} to {t_prev}: only the last step adds none")
    var = beta_t if variance == "large" else ((1 - abar_prev) / (1 - abar_t) * beta_t).clamp(min=1e-20)
    return mean + var.sqrt() * noise


def ddim_step(eps: Tensor, x_t: Tensor, t: int, t_prev: int, betas: Tensor, *, eta: float = 0.0,
              noise: Tensor | None = None, clip: bool = True) -> Tensor:
    """One DDIM step, ``x_t -> x_{t_prev}`` (Song, Meng and Ermon 2021, eq. 12).

    ``x_{t_prev} = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps + sigma noise`` with
    ``x0_hat`` from :func:`predict_x0` (clipped to [-1, 1] when ``clip``) and
    ``sigma = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev)``. With
    ``eta = 0`` the step is deterministic and may jump many timesteps at once: the same trained
    model samples in 20-50 steps instead of ``T``. ``eta = 1`` is ancestral sampling. Equal to
    diffusers' ``DDIMScheduler.step`` (``clip_sample=clip``) given the same noise.

    Args:
        eps, x_t (Tensor[N, ...]): the predicted noise and the current samples.
        t, t_prev: the current and the next timestep, ``-1 <= t_prev < t < T``.
        noise (Tensor[N, ...]): standard normal noise, needed when ``eta > 0``.

    Returns:
        Tensor[N, ...]: ``x_{t_prev}``.
    """
    abar_t, abar_prev = _abar_pair(betas, t, t_prev)
    _check_step(eps, x_t, noise)
    if not 0 <= eta <= 1:
        raise ValueError(f"eta must be in [0, 1], got {eta}")
    abar_t, abar_prev = abar_t.to(x_t), abar_prev.to(x_t)
    x0 = predict_x0(eps, x_t, abar_t)
    if clip:
        x0 = x0.clamp(-1.0, 1.0)
    sigma = eta * ((1 - abar_prev) / (1 - abar_t) * (1 - abar_t / abar_prev)).sqrt()
    x_prev = abar_prev.sqrt() * x0 + (1 - abar_prev - sigma**2).sqrt() * eps
    if eta > 0:
        if noise is None:
            raise ValueError("noise is needed when eta > 0")
        x_prev = x_prev + sigma * noise
    return x_prev


def sampling_timesteps(timesteps: int, steps: int) -> list[int]:
    """The timesteps a sampler with ``steps`` steps visits, from the noisiest down to 0.

    Evenly spaced with stride ``timesteps // steps``: ``[(steps - 1) k, ..., k, 0]``, diffusers'
    ``"leading"`` spacing (``DDIMScheduler.set_timesteps``). ``steps = timesteps`` visits every step.
    """
    _check_timesteps(timesteps)
    if not isinstance(steps, int) or isinstance(steps, bool) or not 1 <= steps <= timesteps:
        raise ValueError(f"steps must be an int in [1, {timesteps}], got {steps!r}")
    stride = timesteps // steps
    return list(range((steps - 1) * stride, -1, -stride))


@torch.no_grad()
def sample(model: nn.Module, shape: tuple[int, ...], betas: Tensor, *, steps: int | None = None,
           method: str = "ddpm", eta: float = 0.0, generator: torch.Generator | None = None,
           record: tuple[int, ...] = (), clip: bool = True) -> tuple[Tensor, dict[int, Tensor]]:
    """Draw samples: start from ``x_T ~ N(0, I)`` and apply ``steps`` reverse steps down to ``x_0``.

    ``method="ddpm"`` uses :func:`ddpm_step` (ancestral sampling; with ``steps < T`` on the
    respaced schedule), ``"ddim"`` uses :func:`ddim_step` with ``eta``. The model is called once per
    step, on the timesteps of :func:`sampling_timesteps`.

    Args:
        model: ``model(x_t, t)`` predicts the noise.
        shape: ``(N, C, H, W)`` of the samples.
        steps: number of steps (denoiser calls); default ``T``.
        record: timesteps whose ``x_t`` (before the step at ``t``) to keep, e.g. to show the reverse process.

    Returns:
        The samples ``x_0`` (Tensor[N, C, H, W], in about [-1, 1]) and ``{t: x_t}`` for the recorded timesteps.
    """
    check_tensor(betas, "betas", ndim=1, shape_hint="(T,)", floating=True)
    if method not in ("ddpm", "ddim"):
        raise ValueError(f"method must be 'ddpm' or 'ddim', got {method!r}")
    schedule = sampling_timesteps(len(betas), len(betas) if steps is None else steps)
    device = next(model.parameters()).device
    draw = generator.device if generator is not None else device
    x = torch.randn(shape, generator=generator, device=draw).to(device)  # x_T
    betas, kept = betas.to(device), {}
    was_training = model.training
    model.eval()
    for i, t in enumerate(schedule):
        if t in record:
            kept[t] = x.cpu()
        t_prev = schedule[i + 1] if i + 1 < len(schedule) else -1
        eps = model(x, torch.full((shape[0],), t, device=device, dtype=torch.long))
        noise = (torch.randn(shape, generator=generator, device=draw).to(device)
                 if t_prev >= 0 and (method == "ddpm" or eta > 0) else None)
        if method == "ddpm":
            x = ddpm_step(eps, x, t, betas, noise, t_prev=t_prev, clip=clip)
        else:
            x = ddim_step(eps, x, t, t_prev, betas, eta=eta, noise=noise, clip=clip)
    model.train(was_training)
    return x, kept
