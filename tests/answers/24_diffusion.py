"""Answers to exercise 24_diffusion: a right one per question, wrong ones (one per known mistake), and cheats.

Each implementation takes ``mistake=None`` (the right answer) or the name of one mistake.
``WRONG`` rows are ``(question, implementation, mistake, words the message must contain)``;
``CHEATS`` rows are ``(question, answer)`` for answers that call what they are asked to write.
"""

import math

import torch
from diffusers import DDPMScheduler

import companion.diffusion

ABAR = {None: 0.9**10, "t - 1": 0.9**9, "t + 1": 0.9**11, "sqrt": math.sqrt(0.9**10),
        "noise": 1 - 0.9**10, "exp": math.exp(-1.0), "sum": 0.0}
CALLS = {None: 25, "jumps": 24, "ancestral": 1000, "one more": 26, "float": 25.0}


def predicted_abar(*, mistake=None):
    return ABAR[mistake]


def predicted_calls(*, mistake=None):
    return CALLS[mistake]


def q_sample(x0, t, noise, betas, *, mistake=None):
    abar = torch.cumprod(1 - betas, dim=0)  # (T,)
    index = t + {"t - 1": -1, "t + 1": 1}.get(mistake, 0)
    a = abar[index].view(-1, 1, 1, 1)  # (N, 1, 1, 1)
    signal = a if mistake in ("colleague", "no sqrt signal") else a.sqrt()
    rest = 1 - a if mistake in ("colleague", "no sqrt noise") else (1 - a).sqrt()
    if mistake == "swap":
        return signal * noise + rest * x0
    return signal * x0 + rest * noise


def reverse_step(eps, x_t, t, betas, z, *, mistake=None):
    alphas = 1 - betas
    abar = torch.cumprod(alphas, dim=0)
    i = t - 1 if mistake in ("colleague", "t - 1") else t
    if mistake == "x0":
        prev = abar[i - 1] if i > 0 else torch.tensor(1.0, dtype=betas.dtype)
        mean = prev.sqrt() * betas[i] / (1 - abar[i]) * eps + alphas[i].sqrt() * (1 - prev) / (1 - abar[i]) * x_t
    else:
        mean = (x_t - betas[i] / (1 - abar[i]).sqrt() * eps) / alphas[i].sqrt()
    last = 1 if mistake in ("colleague", "skip at 1") else 0
    if t <= last and mistake != "last noise":
        return mean
    if mistake == "beta as std":
        return mean + betas[i] * z
    if mistake == "tilde":
        return mean + ((1 - abar[i - 1]) / (1 - abar[i]) * betas[i]).sqrt() * z
    return mean + betas[i].sqrt() * z


WRONG = [
    ("q1", predicted_abar, "t - 1", "ten factors of 0.9, not nine"),
    ("q1", predicted_abar, "t + 1", "not eleven"),
    ("q1", predicted_abar, "sqrt", "this is sqrt(abar_t)"),
    ("q1", predicted_abar, "noise", "this is 1 - abar_t"),
    ("q1", predicted_abar, "exp", "only an approximation"),
    ("q1", predicted_abar, "sum", "do not subtract"),
    ("q2", predicted_calls, "jumps", "counts the jumps"),
    ("q2", predicted_calls, "ancestral", "ancestral sampling"),
    ("q2", predicted_calls, "one more", "one call too many"),
    ("q2", predicted_calls, "float", "return an int"),
    ("q3", q_sample, "colleague", "still the colleague's bug"),
    ("q3", q_sample, "no sqrt signal", "missing on abar_t"),
    ("q3", q_sample, "no sqrt noise", "missing on 1 - abar_t"),
    ("q3", q_sample, "t - 1", "abar[t - 1] is the previous step's"),
    ("q3", q_sample, "t + 1", "abar[t + 1] is the next step's"),
    ("q3", q_sample, "swap", "swapped"),
    ("q4", reverse_step, "colleague", "still the colleague's bugs"),
    ("q4", reverse_step, "t - 1", "t is off by one"),
    ("q4", reverse_step, "skip at 1", "skipped at t = 1"),
    ("q4", reverse_step, "last noise", "noise is added at the last step"),
    ("q4", reverse_step, "x0", "read as x0"),
    ("q4", reverse_step, "beta as std", "its standard deviation is sqrt(beta_t)"),
    ("q4", reverse_step, "tilde", "posterior variance"),
]


def _add_noise(x0, t, noise, betas):
    scheduler = DDPMScheduler(num_train_timesteps=len(betas), trained_betas=betas.tolist())
    return scheduler.add_noise(x0, noise, t)


CHEATS = [
    ("q3", lambda x0, t, noise, betas: companion.diffusion.q_sample(x0, t, noise, betas)),
    ("q3", _add_noise),
    ("q4", lambda eps, x_t, t, betas, z: companion.diffusion.ddpm_step(eps, x_t, t, betas, z, variance="large",
                                                                       clip=False)),
]
