"""Normalisation layers from scratch: batch norm, group norm and weight standardisation.

* **Batch normalisation** (Ioffe and Szegedy, 2015, https://arxiv.org/abs/1502.03167) normalises
  each channel with the mean and variance of the current mini-batch while training, and with
  running averages of them at test time.
* **Group normalisation** (Wu and He, 2018, https://arxiv.org/abs/1803.08494) normalises each
  example on its own, over groups of channels, so it does not depend on the batch size.
* **Weight standardisation** (Qiao et al., 2019, https://arxiv.org/abs/1903.10520) standardises the
  weights of every convolution filter instead of the activations; with group norm it replaces
  batch norm in Big Transfer (Kolesnikov et al., 2020, https://arxiv.org/abs/1912.11370).

The layers match ``nn.BatchNorm2d``, ``nn.GroupNorm`` and a hand-standardised ``F.conv2d`` in
values and gradients, use the same parameter and buffer names (so state dicts load both ways) and
raise a clear error on an input of the wrong shape.

Introduced in chapter 3, *Training a CNN: the loop, normalisation, augmentation*.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from companion._checks import check_positive_int, check_tensor

__all__ = ["BatchNorm2d", "GroupNorm", "WSConv2d"]


def _check_eps(eps: object) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
        raise ValueError(f"eps must be a float >= 0, got {eps!r}")
    return float(eps)


class BatchNorm2d(nn.Module):
    r"""Batch normalisation over the (N, H, W) axes of an (N, C, H, W) batch; same as ``nn.BatchNorm2d``.

    In training mode each channel :math:`c` is normalised with the statistics of the batch,

    .. math::  y = \frac{x - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}}\,\gamma_c + \beta_c,

    where :math:`\sigma_c^2` is the biased variance (divided by :math:`m = N H W`). The running
    averages used in eval mode are updated with the *unbiased* variance (divided by :math:`m-1`):
    :math:`\hat\mu \leftarrow (1-\text{momentum})\,\hat\mu + \text{momentum}\,\mu_c`, and likewise for
    :math:`\hat\sigma^2`. ``momentum=None`` gives the cumulative average over all batches seen
    (factor :math:`1/\text{num\_batches\_tracked}`), as in torch.

    Args:
        num_features: the number of channels C.
        eps: added to the variance before the square root.
        momentum: weight of the new batch in the running averages, or ``None`` for a cumulative
            average.
        affine: learn a per-channel scale ``weight`` (:math:`\gamma`) and shift ``bias`` (:math:`\beta`).
        track_running_stats: keep ``running_mean``, ``running_var`` and ``num_batches_tracked``;
            without them, eval mode also normalises with the batch statistics.

    Shape:
        input ``(N, C, H, W)`` -> output ``(N, C, H, W)``.

    Introduced in chapter 3.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True) -> None:
        super().__init__()
        self.num_features = check_positive_int(num_features, "num_features")
        self.eps = _check_eps(eps)
        if momentum is not None and (isinstance(momentum, bool) or not isinstance(momentum, (int, float))
                                     or not 0 <= momentum <= 1):
            raise ValueError(f"momentum must be a float in [0, 1] or None, got {momentum!r}")
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features))  # gamma
            self.bias = nn.Parameter(torch.zeros(num_features))  # beta
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features))
            self.register_buffer("running_var", torch.ones(num_features))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def reset_running_stats(self) -> None:
        """Forget the running statistics (mean 0, variance 1, no batch seen)."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x (Tensor[N, C, H, W])``; returns ``Tensor[N, C, H, W]``."""
        check_tensor(x, "input", ndim=4, shape_hint="(N, C, H, W)", floating=True)
        if x.shape[1] != self.num_features:
            raise ValueError(f"input has {x.shape[1]} channels but this BatchNorm2d expects "
                             f"num_features={self.num_features}: input shape {tuple(x.shape)}")
        use_batch_stats = self.training or not self.track_running_stats
        if use_batch_stats:
            m = x.numel() // x.shape[1]  # values per channel: N * H * W
            if self.training and m < 2:
                raise ValueError(f"batch norm needs more than one value per channel when training, "
                                 f"got input of shape {tuple(x.shape)}")
            var, mean = torch.var_mean(x, dim=(0, 2, 3), correction=0)  # (C,) each; biased: divide by m
            if self.training and self.track_running_stats:
                self._update_running_stats(mean.detach(), var.detach() * m / (m - 1))  # unbiased
        else:
            mean, var = self.running_mean, self.running_var
        x_hat = (x - mean[None, :, None, None]) * torch.rsqrt(var[None, :, None, None] + self.eps)  # (N, C, H, W)
        if self.affine:
            x_hat = x_hat * self.weight[None, :, None, None] + self.bias[None, :, None, None]  # (1, C, 1, 1) broadcast
        return x_hat

    @torch.no_grad()
    def _update_running_stats(self, mean: Tensor, unbiased_var: Tensor) -> None:
        self.num_batches_tracked += 1
        factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        self.running_mean.mul_(1 - factor).add_(factor * mean)
        self.running_var.mul_(1 - factor).add_(factor * unbiased_var)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class GroupNorm(nn.Module):
    r"""Group normalisation of an (N, C, \*) batch; same as ``nn.GroupNorm``.

    The C channels are split into ``num_groups`` groups of C/G consecutive channels; each example
    is normalised with the mean and (biased) variance of each of its groups, over the group's
    channels and all spatial positions, then scaled and shifted per channel. Nothing depends on
    the other examples of the batch, so training and eval mode compute the same thing and a batch
    of one works.

    Args:
        num_groups: G; must divide ``num_channels``. G = 1 is layer norm over (C, H, W); G = C is
            instance norm.
        num_channels: C.
        eps: added to the variance before the square root.
        affine: learn a per-channel ``weight`` and ``bias``.

    Shape:
        input ``(N, C, *)`` (e.g. ``(N, C, H, W)``) -> output of the same shape.

    Introduced in chapter 3.
    """

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True) -> None:
        super().__init__()
        self.num_groups = check_positive_int(num_groups, "num_groups")
        self.num_channels = check_positive_int(num_channels, "num_channels")
        if num_channels % num_groups != 0:
            raise ValueError(f"num_channels must be divisible by num_groups, got num_channels={num_channels} "
                             f"and num_groups={num_groups}")
        self.eps = _check_eps(eps)
        self.affine = affine
        if affine:
            self.weight = nn.Parameter(torch.ones(num_channels))
            self.bias = nn.Parameter(torch.zeros(num_channels))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x (Tensor[N, C, *])``; returns a tensor of the same shape."""
        check_tensor(x, "input", floating=True)
        if x.dim() < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"input must be (N, C, *) with C = num_channels = {self.num_channels}, "
                             f"got shape {tuple(x.shape)}")
        n, c = x.shape[:2]
        groups = x.reshape(n, self.num_groups, -1)  # (N, G, C/G * H * W)
        var, mean = torch.var_mean(groups, dim=2, correction=0, keepdim=True)  # (N, G, 1) each
        x_hat = ((groups - mean) * torch.rsqrt(var + self.eps)).reshape(x.shape)  # (N, G, C/G*H*W) -> (N, C, *)
        if self.affine:
            per_channel = (1, c) + (1,) * (x.dim() - 2)  # (1, C, 1, 1) for images
            x_hat = x_hat * self.weight.reshape(per_channel) + self.bias.reshape(per_channel)
        return x_hat

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class WSConv2d(nn.Conv2d):
    r"""A 2-D convolution with weight standardisation (Qiao et al., 2019).

    Before every forward pass each output filter :math:`W_o` (shape ``(C_in/groups, kh, kw)``) is
    standardised to zero mean and unit variance,

    .. math::  \hat W_o = \frac{W_o - \operatorname{mean}(W_o)}{\sqrt{\operatorname{var}(W_o) + \epsilon}},

    and the convolution uses :math:`\hat W`. Gradients flow through the standardisation to the raw
    ``weight``. Takes the same arguments as ``nn.Conv2d``, plus ``eps``.

    Deviation from the paper's code: it divides by the *unbiased* standard deviation plus
    :math:`\epsilon`; we put :math:`\epsilon` under the square root with the biased variance, as
    batch and group norm do (Big Transfer does the same with a smaller :math:`\epsilon`). The
    standardised filter's variance is then :math:`v / (v + \epsilon)` for a raw variance :math:`v`:
    1 up to :math:`\epsilon`.

    Shape:
        input ``(N, C_in, H, W)`` or ``(C_in, H, W)`` -> output ``(N, C_out, H_out, W_out)``
        (or ``(C_out, H_out, W_out)``).

    Introduced in chapter 3.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] | str = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, *, eps: float = 1e-5) -> None:
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                         dilation=dilation, groups=groups, bias=bias, padding_mode=padding_mode,
                         device=device, dtype=dtype)
        self.eps = _check_eps(eps)

    def standardized_weight(self) -> Tensor:
        """The standardised filters ``Tensor[C_out, C_in/groups, kh, kw]``: per filter, mean 0 and variance 1."""
        var, mean = torch.var_mean(self.weight, dim=(1, 2, 3), correction=0, keepdim=True)  # (C_out, 1, 1, 1)
        return (self.weight - mean) / torch.sqrt(var + self.eps)  # (C_out, C_in/groups, kh, kw)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x (Tensor[N, C_in, H, W])`` with the standardised filters."""
        check_tensor(x, "input", ndim=(3, 4), shape_hint="(N, C_in, H, W) or (C_in, H, W)", floating=True)
        if x.shape[-3] != self.in_channels:
            raise ValueError(f"input has {x.shape[-3]} channels but this WSConv2d expects "
                             f"in_channels={self.in_channels}: input shape {tuple(x.shape)}")
        if self.padding_mode != "zeros":  # reflect/replicate/circular: pad first, as nn.Conv2d does
            x = F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode)
            return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, self.standardized_weight(), self.bias, self.stride, self.padding, self.dilation,
                        self.groups)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", eps={self.eps}"
